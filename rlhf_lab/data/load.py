"""Load, validate and split the run's datasets, before any model is loaded.

Every source is streamed row by row: renamed (dataset.columns), read in its format (detected from its first row, or
dataset.format), converted to what the algorithm trains on, checked, and stored compactly (data/rows.py). A bad
row names its file, line (or row) and field.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rlhf_lab.config.dataset import DatasetConfig
from rlhf_lab.data.formats import FORMATS, ROW_SOURCE
from rlhf_lab.data.images import IMAGES, attach_images, has_images
from rlhf_lab.data.readers import BadRow, FileRows
from rlhf_lab.data.rows import Rows
from rlhf_lab.data.sources import Source, parse_source
from rlhf_lab.data.styles import STYLES, RowProblem, detect
from rlhf_lab.errors import ConfigError, DataError
from rlhf_lab.paths import write_lines_atomic


@dataclass
class Dropped:
    path: str
    line: int
    field: str | None
    message: str


@dataclass
class SourceRows:
    """What one source gave: its rows (after SOURCE#N), the format it was read in, how many rows it had."""

    source: str
    split: str
    format: str
    read: int
    rows: Rows

    def summary(self) -> dict:
        return {
            "source": self.source,
            "split": self.split,
            "format": self.format,
            "read": self.read,
            "rows": len(self.rows),
        }


@dataclass
class DataSplits:
    train: Rows
    val: Rows
    dropped: list[Dropped] = field(default_factory=list)
    # Per training source: rows read and used (summary.json's data_sources).
    sources: list[dict] = field(default_factory=list)
    # Where the held-out rows came from, in words (logged and saved).
    val_origin: str = "none"


class Reader:
    """Reads sources into converted rows for one algorithm format, with the run's column renames and bad-row rule."""

    def __init__(self, cfg: DatasetConfig, fmt: str):
        self.convert = FORMATS[fmt]
        self.format = cfg.format
        self.columns = dict(cfg.columns or {})
        self.lenient = cfg.on_bad_row == "skip"
        self.dropped: list[Dropped] = []
        self.columns_found: set[str] = set()

    def read(self, source: Source, split: str) -> SourceRows:
        rows = Rows()
        style = None if self.format == "auto" else self.format
        read = 0
        for file in source.read(split):
            for number, raw in file.rows:
                read += 1
                try:
                    row = self._renamed(_as_object(raw))
                    if style is None:
                        style = detect(row, file.shown)
                    converted = self.convert(STYLES[style](row))
                    attach_images(row, converted, file.base)
                except RowProblem as p:
                    self._bad(file, number, p)
                    continue
                for out in converted:
                    out[ROW_SOURCE] = f"{file.shown}:{number}"
                    rows.append(out)
        if not len(rows):
            raise DataError(str(source), f"no usable rows ({read} read, all dropped as bad)")
        return SourceRows(source.spec.text, split, style or self.format, read, rows)

    def _bad(self, file: FileRows, number: int, problem: RowProblem) -> None:
        if not self.lenient:
            raise DataError(file.shown, problem.message, line=number, field=problem.field, unit=file.unit) from None
        self.dropped.append(Dropped(file.shown, number, problem.field, problem.message))

    def _renamed(self, row: dict) -> dict:
        if not self.columns:
            return row
        out = {}
        for key, value in row.items():
            new = self.columns.get(key, key)
            if key in self.columns:
                self.columns_found.add(key)
                if new in row and new not in self.columns:
                    raise RowProblem(
                        key,
                        f"dataset.columns renames it to {new!r}, but the row already has a {new!r} "
                        f"column; rename that one too, or drop {key!r} from dataset.columns",
                    )
            out[new] = value
        return out

    def check_columns_used(self) -> None:
        """A rename that matched no column of any source did nothing: say so rather than train without it."""
        unused = sorted(set(self.columns) - self.columns_found)
        if unused:
            raise ConfigError(
                "dataset.columns",
                f"no source has a column {', '.join(map(repr, unused))}; check the spelling against the data's columns",
            )


def _as_object(raw) -> dict:
    if isinstance(raw, BadRow):
        raise RowProblem(None, raw.message)
    if not isinstance(raw, dict):
        raise RowProblem(None, f"expected a JSON object, got {type(raw).__name__}")
    return raw


def take(rows: Rows, n: int | None, seed: int) -> Rows:
    """SOURCE#N: N rows drawn with the seed; beyond the source's size every row repeats (whole copies, then a draw
    for the rest), as ms-swift samples."""
    if n is None:
        return rows
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    copies, rest = divmod(n, len(rows))
    return rows.select([*list(range(len(rows))) * copies, *order[:rest]])


def load_file(path: Path, fmt: str, lenient: bool, dropped: list[Dropped], dataset_format: str = "auto") -> Rows:
    """The converted rows of one data file (any file type and format)."""
    cfg = DatasetConfig(path=str(path), format=dataset_format, on_bad_row="skip" if lenient else "error")
    reader = Reader(cfg, fmt)
    rows = reader.read(Source(parse_source(str(path)), None), "train").rows
    dropped.extend(reader.dropped)
    return rows


def read_source(entry: str, fmt: str, split: str = "train", seed: int = 42) -> Rows:
    """The converted rows of one source as training reads it (any file type, format, folder or hub dataset;
    SOURCE#N takes N rows): what the verbs that read data (infer) use."""
    reader = Reader(DatasetConfig(path=entry), fmt)
    source = Source(parse_source(entry), None)
    return take(reader.read(source, split).rows, source.spec.take, seed)


def _sources(entries: Iterable[str], subset: str | None) -> list[Source]:
    return [Source(parse_source(entry), subset) for entry in entries]


def load_splits(cfg: DatasetConfig, fmt: str, seed: int, images: bool = False) -> DataSplits:
    """images: whether the algorithm reads images (rows with images are an error otherwise)."""
    reader = Reader(cfg, fmt)
    sources = _sources(cfg.sources, cfg.subset)
    parts = [reader.read(s, cfg.split) for s in sources]
    for part, source in zip(parts, sources):
        part.rows = take(part.rows, source.spec.take, seed)
    train = Rows.concat([p.rows for p in parts])
    val, origin = _held_out(cfg, reader, sources, seed)
    if not len(val) and cfg.split_ratio > 0:
        train, val = _split_off(train, cfg.split_ratio, seed)
        origin = f"split_ratio {cfg.split_ratio} of the training rows"
    reader.check_columns_used()
    if cfg.max_samples is not None:
        train = train[: cfg.max_samples]
    if not len(train):
        raise DataError(cfg.sources[0], "no training rows left after the held-out split; lower dataset.split_ratio")
    _check_images(train, val, images)
    return DataSplits(train, val, reader.dropped, [p.summary() for p in parts], origin)


def _held_out(cfg: DatasetConfig, reader: Reader, sources: list[Source], seed: int) -> tuple[Rows, str]:
    """val_path, else the val_split of the training sources that have it; nothing otherwise (the caller may split)."""
    if cfg.val_sources:
        val_sources = _sources(cfg.val_sources, cfg.subset)
        # A held-out file is read whole; a folder or Hub id gives its val_split where it has one, else train.
        splits = [cfg.val_split if cfg.val_split and cfg.val_split in s.splits() else "train" for s in val_sources]
        parts = [take(reader.read(s, split).rows, s.spec.take, seed) for s, split in zip(val_sources, splits)]
        return Rows.concat(parts), f"dataset.val_path {', '.join(cfg.val_sources)}"
    if cfg.val_split is None:
        return Rows(), "none"
    having = [s for s in sources if cfg.val_split in s.splits()]
    if not having:
        return Rows(), f"none (no training source has a {cfg.val_split!r} split)"
    parts = [reader.read(s, cfg.val_split).rows for s in having]
    return Rows.concat(parts), f"split {cfg.val_split!r} of {', '.join(str(s) for s in having)}"


def _split_off(train: Rows, ratio: float, seed: int) -> tuple[Rows, Rows]:
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(train) * ratio))
    held = set(order[:n_val])
    return train.select(i for i in range(len(train)) if i not in held), train.select(sorted(held))


def _check_images(train: Rows, val: Rows, images: bool) -> None:
    if not (has_images(train) or has_images(val)):
        return
    if not images:
        first = next(r for r in (*train, *val) if r.get(IMAGES))
        path, _, line = first[ROW_SOURCE].rpartition(":")
        from rlhf_lab.algorithms.registry import ALGORITHMS

        readers = ", ".join(name for name, spec in ALGORITHMS.items() if spec.images)
        raise DataError(path, f"this algorithm does not read images (those that do: {readers})", int(line), IMAGES)
    train.image_slots = val.image_slots = True


def write_dropped(dropped: list[Dropped], run_dir: Path) -> Path | None:
    if not dropped:
        return None
    out = run_dir / "dropped_rows.jsonl"
    write_lines_atomic(out, [json.dumps(d.__dict__) for d in dropped])
    return out
