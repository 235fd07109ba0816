"""Load, validate and split the run's datasets, before any model is loaded."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from rlhf_lab.data.formats import FORMATS, ROW_SOURCE, RowProblem
from rlhf_lab.data.images import IMAGES, attach_images, has_images, with_image_slots
from rlhf_lab.data.readers import read_rows
from rlhf_lab.errors import DataError
from rlhf_lab.paths import resolve_data_path
from rlhf_lab.schema.dataset import DatasetConfig


@dataclass
class Dropped:
    path: str
    line: int
    field: str | None
    message: str


@dataclass
class DataSplits:
    train: list[dict]
    val: list[dict]
    dropped: list[Dropped] = field(default_factory=list)


def load_file(path: Path, fmt: str, lenient: bool, dropped: list[Dropped]) -> list[dict]:
    convert = FORMATS[fmt]
    rows = []
    for line, raw in read_rows(path):
        try:
            converted = convert(raw)
            attach_images(raw, converted, path.parent)
        except RowProblem as p:
            if not lenient:
                raise DataError(str(path), p.message, line=line, field=p.field) from None
            dropped.append(Dropped(str(path), line, p.field, p.message))
            continue
        for row in converted:
            row[ROW_SOURCE] = f"{path}:{line}"
        rows.extend(converted)
    if not rows:
        raise DataError(str(path), f"no usable rows ({len(dropped)} dropped as bad)")
    return rows


def load_splits(cfg: DatasetConfig, fmt: str, seed: int, images: bool = False) -> DataSplits:
    """images: whether the algorithm reads images (rows with images are an error otherwise)."""
    lenient = cfg.on_bad_row == "skip"
    dropped: list[Dropped] = []
    train = load_file(resolve_data_path(cfg.path), fmt, lenient, dropped)
    if cfg.val_path:
        val = load_file(resolve_data_path(cfg.val_path), fmt, lenient, dropped)
    elif cfg.split_ratio > 0:
        order = list(range(len(train)))
        random.Random(seed).shuffle(order)
        n_val = max(1, round(len(train) * cfg.split_ratio))
        held = set(order[:n_val])
        val = [r for i, r in enumerate(train) if i in held]
        train = [r for i, r in enumerate(train) if i not in held]
    else:
        val = []
    if cfg.max_samples is not None:
        train = train[: cfg.max_samples]
    if not train:
        raise DataError(cfg.path, "no training rows left after the held-out split; lower dataset.split_ratio")
    if has_images(train + val):
        if not images:
            first = next(r for r in train + val if r.get(IMAGES))
            path, _, line = first[ROW_SOURCE].rpartition(":")
            from rlhf_lab.registry import ALGORITHMS

            readers = ", ".join(name for name, spec in ALGORITHMS.items() if spec.images)
            raise DataError(path, f"this algorithm does not read images (those that do: {readers})", int(line), IMAGES)
        with_image_slots(train + val)
    return DataSplits(train=train, val=val, dropped=dropped)


def write_dropped(dropped: list[Dropped], run_dir: Path) -> Path | None:
    if not dropped:
        return None
    out = run_dir / "dropped_rows.jsonl"
    with out.open("w") as f:
        for d in dropped:
            f.write(json.dumps(d.__dict__) + "\n")
    return out
