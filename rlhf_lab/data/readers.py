"""Read raw rows from one data file, one row at a time, each with its line (text files) or row (columnar files)
number: .jsonl, .jsonl.gz, .json (an array, or one object per line), .parquet, .csv, .tsv, .arrow.

Rows are streamed: a file of a million rows is never held as a million Python objects. Text is decoded as Python's
json, pandas and datasets decode it: UTF-8 (a byte-order mark is skipped), or UTF-16/32 with a byte-order mark;
\\n, \\r\\n and \\r all end a line.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlhf_lab.errors import DataError

Row = tuple[int, object]  # (1-based line or row number, parsed value)
# Fields of a CSV/TSV row may hold long texts; the csv module's default cap is 128 KiB.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class BadRow:
    """A row that did not parse: validated like any other row, so that on_bad_row=skip can drop it."""

    def __init__(self, message: str):
        self.message = message


@dataclass(frozen=True)
class FileRows:
    """The rows of one file. `unit` says what the numbers count: 'line' (JSON files) or 'row' (the
    record number of parquet, Arrow, CSV and TSV files)."""

    shown: str
    unit: str
    rows: Iterator[Row]
    # Relative image paths in the rows are relative to this folder (the data file's own, as in ms-swift).
    base: Path = Path(".")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for double in (".jsonl.gz", ".json.gz", ".csv.gz", ".tsv.gz"):
        if name.endswith(double):
            return double
    return path.suffix.lower()


def read_file(path: Path, shown: str | None = None) -> FileRows:
    """The rows of a data file, chosen by its suffix; a file that cannot be read is a DataError naming it."""
    shown = shown or str(path)
    if not path.exists():
        raise DataError(shown, "no such file or directory; check dataset.path / dataset.val_path")
    kind = _suffix(path)
    reader = READERS.get(kind)
    if reader is None:
        raise DataError(shown, f"unknown data file type {kind or '(no suffix)'!r}; rlhf_lab reads {', '.join(READERS)}")
    unit = "row" if kind in ROW_NUMBERED else "line"
    return FileRows(shown, unit, _checked(reader(path, shown), shown), path.parent)


def _checked(rows: Iterator[Row], shown: str) -> Iterator[Row]:
    """Pass rows through; a file with none is an error, as is a read failure half-way (named, not a traceback)."""
    count = 0
    try:
        for row in rows:
            count += 1
            yield row
    except UnicodeDecodeError as e:
        raise DataError(shown, f"is not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None
    except (OSError, EOFError) as e:
        raise DataError(shown, f"cannot read the file ({e.__class__.__name__}: {e})") from None
    if count == 0:
        raise DataError(shown, "the file is empty; it needs at least one row")


def _encoding(head: bytes) -> str:
    """Python's json and pandas read UTF-8 (with or without a byte-order mark) and UTF-16/32 with one."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return "utf-8"


def _open_text(path: Path, newline: str | None = None) -> io.TextIOBase:
    opener: Callable[..., Any] = gzip.open if path.name.lower().endswith(".gz") else open
    binary = opener(path, "rb")
    head = binary.peek(4)[:4] if hasattr(binary, "peek") else b""
    return io.TextIOWrapper(binary, encoding=_encoding(head), newline=newline)


def _read_jsonl(path: Path, shown: str) -> Iterator[Row]:
    with _open_text(path) as f:
        yield from _jsonl_lines(f)


def _jsonl_lines(lines) -> Iterator[Row]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as e:
            yield number, BadRow(f"invalid JSON ({e.msg} at column {e.colno})")


def _read_json(path: Path, shown: str) -> Iterator[Row]:
    """A JSON array of rows (each numbered by the line it starts on), or JSON lines in a .json file, as pandas and
    datasets also accept."""
    with _open_text(path) as f:
        text = f.read()
    start = len(text) - len(text.lstrip())
    if text[start : start + 1] == "[":
        yield from _json_array(text, start, shown)
    elif text[start : start + 1] == "{":
        yield from _jsonl_lines(io.StringIO(text))
    elif text.strip():
        raise DataError(shown, "a .json dataset must be an array of objects, or one object per line")


def _json_array(text: str, start: int, shown: str) -> Iterator[Row]:
    decoder = json.JSONDecoder()
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


def _read_delimited(delimiter: str) -> Callable[[Path, str], Iterator[Row]]:
    def read(path: Path, shown: str) -> Iterator[Row]:
        """A header line, then one row per record (a quoted field may span lines). Every value is text: the row
        formats read numbers, booleans and JSON lists from it. An empty field counts as a missing value."""
        with _open_text(path, newline="") as f:
            records = csv.reader(f, delimiter=delimiter)
            header = next(records, None)
            if header is None:
                return
            for number, record in enumerate(records, start=1):
                if not any(record):
                    continue
                if len(record) != len(header):
                    yield number, BadRow(f"has {len(record)} fields but the header names {len(header)}")
                    continue
                yield number, {k: v for k, v in zip(header, record) if v != ""}

    return read


def arrow_rows(table_batches) -> Iterator[Row]:
    """Rows of Arrow record batches, numbered from 1, as plain Python values (images stay undecoded)."""
    number = 0
    for batch in table_batches:
        for row in batch.to_pylist():
            number += 1
            yield number, row


def _read_parquet(path: Path, shown: str) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a file that is not parquet
        raise DataError(shown, f"not a parquet file ({e.__class__.__name__}: {e})") from None
    yield from arrow_rows(parquet.iter_batches(batch_size=1024))


def _read_arrow(path: Path, shown: str) -> Iterator[Row]:
    """An Arrow file as datasets writes it (a stream), or an Arrow IPC file."""
    import pyarrow as pa

    source = pa.memory_map(str(path))
    try:
        batches = pa.ipc.open_stream(source)
    except pa.ArrowInvalid:
        try:
            reader = pa.ipc.open_file(source)
        except pa.ArrowInvalid:
            raise DataError(shown, "not an Arrow file (neither an Arrow stream nor an Arrow IPC file)") from None
        batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
    with source:
        yield from arrow_rows(batches)


READERS: dict[str, Callable[[Path, str], Iterator[Row]]] = {
    ".jsonl": _read_jsonl,
    ".jsonl.gz": _read_jsonl,
    ".json": _read_json,
    ".json.gz": _read_json,
    ".parquet": _read_parquet,
    ".csv": _read_delimited(","),
    ".csv.gz": _read_delimited(","),
    ".tsv": _read_delimited("\t"),
    ".tsv.gz": _read_delimited("\t"),
    ".arrow": _read_arrow,
}
# Files whose rows are numbered as records, not lines (a CSV field may span lines).
ROW_NUMBERED = (".parquet", ".arrow", ".csv", ".csv.gz", ".tsv", ".tsv.gz")
