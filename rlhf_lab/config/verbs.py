"""Options of the verbs that work on trained runs: python -m rlhf_lab <verb> key=value ..."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from omegaconf import MISSING

from rlhf_lab.config.checks import one_of
from rlhf_lab.config.fields import doc

EXPORT_DTYPES = ("auto", "bfloat16", "float16", "float32")


@dataclass
class ExportConfig:
    """A run's model as one plain transformers checkpoint: LoRA merged into the base, ready to serve or share."""

    run: str = doc(MISSING, "The run directory: it holds adapter/ (LoRA) or model/ (full tuning, reward models).")
    out: Optional[str] = doc(None, "Where the exported model goes; null = RUN/export.")
    dtype: str = doc("auto", f"Weights' dtype: {', '.join(EXPORT_DTYPES)}; auto = the base checkpoint's own dtype.")
    overwrite: bool = doc(False, "Replace an earlier export at out.")

    def __post_init__(self) -> None:
        one_of("dtype", self.dtype, EXPORT_DTYPES)
