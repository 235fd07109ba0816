"""Tuner options: which parameters train."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional

from omegaconf import MISSING

from rlhf_lab.config.checks import in_range, positive, str_or_list
from rlhf_lab.config.fields import doc
from rlhf_lab.errors import ConfigError

# LoRA dropout where the algorithm trains with dropout (ms-swift's lora_dropout default).
LORA_DROPOUT = 0.05


@dataclass
class TunerConfig:
    name: str = doc(MISSING, "Tuner: lora or full (set by the option).")
    freeze_vit: bool = doc(True, "Vision-language models: no adapters or gradients in the vision tower (ViT).")
    freeze_aligner: bool = doc(
        True, "Vision-language models: no adapters or gradients in the aligner (the projector into the language model)."
    )

    def check_algorithm(self, algorithm) -> None:
        """Refuse a tuner setting that the algorithm would make do nothing."""


@dataclass
class LoraTunerConfig(TunerConfig):
    name: str = "lora"
    r: int = doc(8, "LoRA adapter rank.")
    alpha: int = doc(32, "LoRA scaling numerator: the update is scaled by alpha / r.")
    # A value with algorithm.disable_dropout=true is refused: it would do nothing.
    dropout: Optional[float] = doc(
        None, f"Dropout on the adapter's input; null = {LORA_DROPOUT} if the algorithm trains with dropout, else none."
    )
    target_modules: Any = doc("all-linear", "Modules given adapters: all-linear, or a list of names (q_proj, ...).")
    modules_to_save: Optional[List[str]] = doc(
        None, "Extra modules trained in full and saved with the adapter (e.g. [embed_tokens, lm_head])."
    )

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
