"""Dataset options: where the rows come from, how they are read, split and measured (see rlhf_lab/data/)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

from rlhf_lab.data.styles import STYLES
from rlhf_lab.errors import ConfigError
from rlhf_lab.schema.checks import in_range, one_of, positive, str_or_list

# Input formats (data/styles.py, which imports nothing heavy); auto detects each source's format from its columns.
FORMATS = ("auto", *STYLES)
# What happens to a row longer than train.max_length: right cuts its end (keeps the first max_length tokens),
# delete drops it (listed like a bad row), error stops the run naming it.
TRUNCATIONS = ("right", "delete", "error")


@dataclass
class DatasetConfig:
    # Training data: a source or a list of sources, each a file (.jsonl, .json, .jsonl.gz, .parquet, .csv, .tsv,
    # .arrow), a save_to_disk folder, a dataset folder laid out as on the Hub, a Hub id, or pkg://<package>/<path>
    # for bundled data; SOURCE#N takes N rows of it (drawn with train.seed; more than it has repeats rows).
    path: Any = MISSING
    # Held-out data for the before/after evaluation (a source or a list, as path); null = the val_split of the
    # training sources where they have it, else split_ratio of the training rows, else no held-out evaluation.
    val_path: Any = None
    # The split read from dataset folders, saved DatasetDicts and Hub ids (a single file is split 'train').
    split: str = "train"
    # The split of the training sources that holds the held-out rows (e.g. test_prefs), used when val_path is null.
    val_split: Optional[str] = None
    # The config (subset) of a dataset repository (a Hub id or a folder laid out as one), e.g. main for gsm8k.
    subset: Optional[str] = None
    # Row format of the sources: auto (detected from each source's columns), messages, sharegpt, alpaca,
    # query_response, trl or hh_rlhf.
    format: str = "auto"
    # Column renames applied before the format is detected, e.g. {question: prompt, answer: solution}.
    columns: Optional[Dict[str, str]] = None
    # The algorithms this dataset suits (set by the named datasets; null = any). Another algorithm is a config error.
    algorithms: Optional[List[str]] = None
    # Fraction of training rows held out when neither val_path nor val_split gives held-out rows (0 = none).
    split_ratio: float = 0.0
    # Use only the first N training rows (null = all).
    max_samples: Optional[int] = None
    # error: a bad row stops the run with its file and line. skip: bad rows are dropped, counted,
    # and listed in <run dir>/dropped_rows.jsonl.
    on_bad_row: str = "error"
    # Rows longer than train.max_length tokens: right (cut the end), delete or error; null = right, except for
    # reward models: delete (TRL's reward trainer cannot score a cut answer, and drops such rows).
    truncation: Optional[str] = None
    # Tokenize each batch when it is drawn instead of every row before training (ms-swift's lazy_tokenize);
    # null = lazily above LAZY_ROWS training rows, for the algorithms that can.
    lazy_tokenize: Optional[bool] = None

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


# Above this many training rows, lazy_tokenize=null tokenizes per batch: TRL tokenizes about 1,700 preference rows a
# second on two CPU cores, so up-front tokenization would delay the first step by more than about 6 s.
LAZY_ROWS = 10_000
