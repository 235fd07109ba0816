"""Which parameters train: LoRA adapters (peft) or the full model."""

from __future__ import annotations

from rlhf_lab.config.tuner import FullTunerConfig, LoraTunerConfig, TunerConfig

# Model head -> peft task type. SEQ_CLS also trains and saves the new score head (modules_to_save).
TASK_TYPES = {"causal_lm": "CAUSAL_LM", "reward": "SEQ_CLS"}


def peft_config(cfg: TunerConfig, disable_dropout: bool, head: str = "causal_lm", exclude: list[str] | None = None):
    """The peft config handed to the trainer (None for full tuning). `disable_dropout`: the algorithm's (the
    adapter then has none); `exclude`: modules that get no adapter (the frozen vision parts of a vision-language
    model).

    The trainer wraps the model itself, so that the reference is the adapter-disabled base: one copy of
    the base weights and no second adapter.
    """
    if isinstance(cfg, LoraTunerConfig):
        from peft import LoraConfig

        target = cfg.target_modules if isinstance(cfg.target_modules, str) else list(cfg.target_modules)
        return LoraConfig(
            r=cfg.r,
            lora_alpha=cfg.alpha,
            lora_dropout=cfg.lora_dropout(disable_dropout),
            target_modules=target,
            modules_to_save=list(cfg.modules_to_save) if cfg.modules_to_save else None,
            exclude_modules=list(exclude) if exclude else None,
            task_type=TASK_TYPES[head],
        )
    if isinstance(cfg, FullTunerConfig):
        return None
    raise TypeError(f"no tuner for {type(cfg).__name__}")


def count_parameters(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
