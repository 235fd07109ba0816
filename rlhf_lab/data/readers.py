"""Read raw rows from .jsonl, .json (array) or a `save_to_disk` folder, each with its line number."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from rlhf_lab.errors import DataError

Row = tuple[int, object]  # (1-based line or row number, parsed value)


def read_rows(path: Path) -> list[Row]:
    """All rows of a data file; any problem with the file itself is a DataError naming it."""
    shown = str(path)
    if not path.exists():
        raise DataError(shown, "no such file or directory; check dataset.path / dataset.val_path")
    if path.is_dir():
        return list(_read_saved_dataset(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(shown, f"cannot read the file ({e.__class__.__name__}: {e})") from e
    if not text.strip():
        raise DataError(shown, "the file is empty; it needs at least one row")
    if path.suffix == ".json":
        return list(_read_json_array(text, shown))
    return list(_read_jsonl(text))


def _read_jsonl(text: str) -> Iterator[Row]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as e:
            yield number, _BadJson(f"invalid JSON ({e.msg} at column {e.colno})")


def _read_json_array(text: str, shown: str) -> Iterator[Row]:
    """Elements of a top-level JSON array, each with the line where it starts."""
    decoder = json.JSONDecoder()
    start = text.index("[") if text.lstrip().startswith("[") else -1
    if start < 0:
        raise DataError(shown, "a .json dataset must be an array of objects; use .jsonl for one object per line")
    pos = start + 1
    while True:
        pos = _skip_space(text, pos)
        if pos >= len(text):
            raise DataError(shown, "the JSON array is not closed (missing ']')", line=text.count("\n", 0, pos) + 1)
        if text[pos] == "]":
            return
        line = text.count("\n", 0, pos) + 1
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            # The array cannot be parsed past this point: one error for the file, at the line JSON reports.
            raise DataError(shown, f"invalid JSON ({e.msg})", line=e.lineno) from e
        yield line, value
        pos = _skip_space(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos += 1


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _read_saved_dataset(path: Path) -> Iterator[Row]:
    try:
        from datasets import DatasetDict, load_from_disk

        ds = load_from_disk(str(path))
    except Exception as e:  # datasets raises several types for a folder it does not recognise
        raise DataError(str(path), f"not a dataset saved with save_to_disk ({e.__class__.__name__}: {e})") from e
    if isinstance(ds, DatasetDict):
        if "train" not in ds:
            raise DataError(str(path), f"a DatasetDict needs a 'train' split; it has {list(ds)}")
        ds = ds["train"]
    for index, row in enumerate(ds, start=1):
        yield index, row


class _BadJson:
    """A line that did not parse: validated like any other row so lenient mode can drop it."""

    def __init__(self, message: str):
        self.message = message
