"""Small validators used by the schema dataclasses' __post_init__ (keys are relative to the group)."""

from __future__ import annotations

import difflib
import math
from typing import Any, Iterable

from rlhf_lab.errors import ConfigError

_SHORT = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}


def one_of(key: str, value: Any, choices: Iterable[Any]) -> None:
    choices = list(choices)
    if value not in choices:
        names = [str(c) for c in choices]
        close = difflib.get_close_matches(str(value), names, n=1, cutoff=0.5) if isinstance(value, str) else []
        # Short spellings (bf16, fp32) that the close-match ratio misses.
        close = close or [n for n in names if isinstance(value, str) and _SHORT.get(value.lower()) == n]
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(key, f"got {value!r}{hint}; choose one of: {', '.join(names)}")


def positive(key: str, value: float | int, allow_zero: bool = False) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(key, f"must be a finite number, got {value}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(key, f"must be {bound}, got {value}")


def in_range(key: str, value: float, low: float, high: float, high_open: bool = False) -> None:
    ok = low <= value < high if high_open else low <= value <= high
    if not ok:
        bracket = ")" if high_open else "]"
        raise ConfigError(key, f"must be in [{low}, {high}{bracket}, got {value}")


def str_or_list(key: str, value: Any) -> list[str]:
    """A sweepable string, or a list of strings (OmegaConf has no Union type for this)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        items = list(value)
        if items and all(isinstance(v, str) for v in items):
            return items
    raise ConfigError(key, f"expected a string or a list of strings, got {value!r}")
