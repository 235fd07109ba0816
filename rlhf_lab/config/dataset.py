"""Dataset options: where the rows come from, how they are read, split and measured (see rlhf_lab/data/)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

from rlhf_lab.config.checks import in_range, one_of, positive, str_or_list
from rlhf_lab.config.fields import doc
from rlhf_lab.data.styles import STYLES
from rlhf_lab.errors import ConfigError

# Input formats (data/styles.py, which imports nothing heavy); auto detects each source's format from its columns.
FORMATS = ("auto", *STYLES)
# What happens to a row longer than train.max_length: right cuts its end (keeps the first max_length tokens),
# delete drops it (listed like a bad row), error stops the run naming it.
TRUNCATIONS = ("right", "delete", "error")
# Above this many training rows, lazy_tokenize=null tokenizes per batch: TRL tokenizes about 1,700 preference rows a
# second on two CPU cores, so up-front tokenization would delay the first step by more than about 6 s.
LAZY_ROWS = 10_000


@dataclass
class DatasetConfig:
    # Each source is a file (.jsonl, .json, .jsonl.gz, .parquet, .csv, .tsv, .arrow), a save_to_disk folder, a
    # dataset folder laid out as on the Hub, a Hub id, or pkg://<package>/<path> for bundled data. SOURCE#N draws
    # with train.seed; asking for more rows than it has repeats rows.
    path: Any = doc(
        MISSING, "Training data: a source (file, folder, Hub id, pkg://...) or a list of them; SOURCE#N takes N rows."
    )
    val_path: Any = doc(
        None, "Held-out data for the before/after evaluation (as path); null = val_split, else split_ratio, else none."
    )
    split: str = doc(
        "train", "Split read from dataset folders, saved DatasetDicts and Hub ids (a single file is split 'train')."
    )
    val_split: Optional[str] = doc(
        None, "Split of the training sources holding the held-out rows (e.g. test_prefs), used when val_path is null."
    )
    subset: Optional[str] = doc(None, "Config (subset) of a dataset repository (Hub id or folder), e.g. main (gsm8k).")
    format: str = doc("auto", f"Row format: {', '.join(FORMATS)} (auto detects it from each source's columns).")
    columns: Optional[Dict[str, str]] = doc(
        None, "Column renames applied before the format is detected, e.g. {question: prompt, answer: solution}."
    )
    algorithms: Optional[List[str]] = doc(
        None, "Algorithms this dataset suits (set by the named datasets; null = any); another one is a config error."
    )
    split_ratio: float = doc(
        0.0, "Fraction of training rows held out when neither val_path nor val_split gives held-out rows (0 = none)."
    )
    max_samples: Optional[int] = doc(None, "Use only the first N training rows (null = all).")
    on_bad_row: str = doc(
        "error", "error: a bad row stops the run (file and line); skip: it is dropped and listed in dropped_rows.jsonl."
    )
    # Reward models delete: TRL's reward trainer cannot score a cut answer, and drops such rows.
    truncation: Optional[str] = doc(
        None, "Rows over train.max_length tokens: right (cut the end), delete or error; null = right (rm: delete)."
    )
    # ms-swift's lazy_tokenize.
    lazy_tokenize: Optional[bool] = doc(
        None, f"Tokenize per batch, not all rows up front; null = above {LAZY_ROWS:,} rows where the algorithm can."
    )

    def __post_init__(self) -> None:
        from rlhf_lab.data.sources import parse_source

        for key in ("path", "val_path"):
            value = getattr(self, key)
            if value is None and key == "val_path":
                continue
            for entry in str_or_list(key, value):
                try:
                    parse_source(entry)
                except ValueError as e:
                    raise ConfigError(key, str(e)) from None
        in_range("split_ratio", self.split_ratio, 0.0, 1.0, high_open=True)
        if self.max_samples is not None:
            positive("max_samples", self.max_samples)
        one_of("on_bad_row", self.on_bad_row, ("error", "skip"))
        one_of("format", self.format, FORMATS)
        if self.truncation is not None:
            one_of("truncation", self.truncation, TRUNCATIONS)
        for key, value in (self.columns or {}).items():
            if not value or not isinstance(value, str):
                raise ConfigError(f"columns.{key}", f"expected the new column name, got {value!r}")

    @property
    def sources(self) -> list[str]:
        return str_or_list("path", self.path)

    @property
    def val_sources(self) -> list[str]:
        return [] if self.val_path is None else str_or_list("val_path", self.val_path)

    def check_algorithm(self, algorithm: str) -> None:
        if self.algorithms is not None and algorithm not in self.algorithms:
            raise ConfigError(
                "dataset",
                f"this dataset suits algorithm={'/'.join(self.algorithms)}, not {algorithm}; choose one of those, or "
                "set dataset.algorithms=null if you know its rows fit",
            )
