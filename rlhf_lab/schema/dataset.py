"""Dataset options: files in ms-swift's formats (.jsonl, .json array, or a save_to_disk folder)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from omegaconf import MISSING

from rlhf_lab.schema.checks import in_range, one_of, positive


@dataclass
class DatasetConfig:
    # Training data: a path (relative to where you run), or pkg://<package>/<file> for bundled data.
    path: str = MISSING
    # Held-out data for the before/after evaluation; null = split off split_ratio of the training rows.
    val_path: Optional[str] = None
    # Fraction of training rows held out when val_path is null (0 = no held-out evaluation).
    split_ratio: float = 0.0
    # Use only the first N training rows (null = all).
    max_samples: Optional[int] = None
    # error: a bad row stops the run with its file and line. skip: bad rows are dropped, counted,
    # and listed in <run dir>/dropped_rows.jsonl.
    on_bad_row: str = "error"

    def __post_init__(self) -> None:
        in_range("split_ratio", self.split_ratio, 0.0, 1.0, high_open=True)
        if self.max_samples is not None:
            positive("max_samples", self.max_samples)
        one_of("on_bad_row", self.on_bad_row, ("error", "skip"))
