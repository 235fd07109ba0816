"""Tuner options: which parameters train."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional

from omegaconf import MISSING

from rlhf_lab.errors import ConfigError
from rlhf_lab.schema.checks import in_range, positive, str_or_list

# LoRA dropout where the algorithm trains with dropout (ms-swift's lora_dropout default).
LORA_DROPOUT = 0.05


@dataclass
class TunerConfig:
    name: str = MISSING
    # Vision-language models: keep the vision tower (ViT) and the projector that feeds its features to the
    # language model (the aligner) frozen: no LoRA adapters there, no gradients in full tuning.
    freeze_vit: bool = True
    freeze_aligner: bool = True

    def check_algorithm(self, algorithm) -> None:
        """Refuse a tuner setting that the algorithm would make do nothing."""


@dataclass
class LoraTunerConfig(TunerConfig):
    name: str = "lora"
    # Adapter rank.
    r: int = 8
    # Scaling numerator: the update is scaled by alpha / r.
    alpha: int = 32
    # Dropout on the adapter's input; null = 0.05 where the algorithm trains with dropout, none where it switches
    # dropout off (algorithm.disable_dropout). A value with disable_dropout=true is refused: it would do nothing.
    dropout: Optional[float] = None
    # all-linear, or a list of module names (q_proj, v_proj, ...).
    target_modules: Any = "all-linear"
    # Extra modules trained in full and saved with the adapter (e.g. [embed_tokens, lm_head]).
    modules_to_save: Optional[List[str]] = None

    def __post_init__(self) -> None:
        positive("r", self.r)
        positive("alpha", self.alpha)
        if self.dropout is not None:
            in_range("dropout", self.dropout, 0.0, 1.0, high_open=True)
        str_or_list("target_modules", self.target_modules)

    def lora_dropout(self, disable_dropout: bool) -> float:
        """The adapter's dropout under the algorithm's disable_dropout."""
        if self.dropout is not None:
            return self.dropout
        return 0.0 if disable_dropout else LORA_DROPOUT

    def check_algorithm(self, algorithm) -> None:
        if algorithm.disable_dropout and self.dropout:
            raise ConfigError(
                "tuner.dropout",
                f"{self.dropout} would do nothing: algorithm={algorithm.name} switches every dropout off "
                "(algorithm.disable_dropout=true); set algorithm.disable_dropout=false to train with dropout, "
                "or leave tuner.dropout unset",
            )


@dataclass
class FullTunerConfig(TunerConfig):
    name: str = "full"
