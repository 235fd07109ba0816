"""Algorithm options. Parameter names and defaults follow ms-swift's `swift rlhf`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional

from omegaconf import MISSING

from rlhf_lab.errors import ConfigError
from rlhf_lab.schema.checks import in_range, positive, str_or_list

# Every loss TRL 1.16's DPOTrainer implements ('sft' is reached through rpo_alpha or a combined list).
DPO_LOSS_TYPES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard",
    "aot", "aot_unpaired", "apo_zero", "apo_down", "discopop", "sigmoid_norm", "sft",
)
# Losses that read label_smoothing (sigmoid through cDPO, implemented in algorithms/dpo.py).
LABEL_SMOOTHING_LOSSES = ("sigmoid", "robust", "exo_pair", "aot", "aot_unpaired")


@dataclass
class AlgorithmConfig:
    # Registry key: which builder turns the run into a trainer.
    name: str = MISSING

    def model_paths(self) -> dict[str, str]:
        """Extra models the algorithm loads (key -> path or hub id), checked before anything loads."""
        return {}


@dataclass
class DPOConfig(AlgorithmConfig):
    name: str = "dpo"
    # Strength of the implicit KL constraint (the regularisation tau for ipo).
    beta: float = 0.1
    # One loss name, or a list of names combined with loss_weights (e.g. [sigmoid, bco_pair, sft] is MPO).
    loss_type: Any = "sigmoid"
    # Weights of a combined loss_type list; null = 1.0 each.
    loss_weights: Optional[List[float]] = None
    # Probability that a preference label is flipped: conservative DPO (cDPO) for sigmoid,
    # the epsilon of robust, exo_pair and aot.
    label_smoothing: float = 0.0
    # Weight of the chosen-answer NLL added to the preference loss (RPO); 0 disables it.
    rpo_alpha: float = 0.0
    # Path or hub id of a separate reference model; null = the base model (LoRA: adapters disabled).
    ref_model: Optional[str] = None
    # Compute the reference log-probs once before training instead of every step.
    precompute_ref_log_probs: bool = False

    def __post_init__(self) -> None:
        positive("beta", self.beta)
        losses = str_or_list("loss_type", self.loss_type)
        for loss in losses:
            if loss not in DPO_LOSS_TYPES:
                raise ConfigError("loss_type", f"unknown DPO loss {loss!r}; choose from: {', '.join(DPO_LOSS_TYPES)}")
        if self.loss_weights is not None and len(self.loss_weights) != len(losses):
            raise ConfigError(
                "loss_weights", f"has {len(self.loss_weights)} weights for {len(losses)} losses {losses}; give one per loss"
            )
        in_range("label_smoothing", self.label_smoothing, 0.0, 0.5, high_open=True)
        if "exo_pair" in losses and self.label_smoothing == 0:
            raise ConfigError("label_smoothing", "exo_pair needs a label_smoothing > 0 (the paper uses 1e-3)")
        if self.label_smoothing > 0 and not set(losses) & set(LABEL_SMOOTHING_LOSSES):
            raise ConfigError(
                "label_smoothing",
                f"has no effect on {losses}; it applies to {', '.join(LABEL_SMOOTHING_LOSSES)}",
            )
        positive("rpo_alpha", self.rpo_alpha, allow_zero=True)

    def model_paths(self) -> dict[str, str]:
        return {"ref_model": self.ref_model} if self.ref_model else {}

    @property
    def losses(self) -> list[str]:
        return str_or_list("loss_type", self.loss_type)


