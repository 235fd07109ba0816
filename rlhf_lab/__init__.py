"""rlhf_lab: Hydra-configured RLHF experiments on TRL, transformers, peft and DeepSpeed."""

__version__ = "0.1.0"
