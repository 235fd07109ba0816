"""The loaded rows of a run, held compactly: each converted row is kept serialized and decoded when read.

A million preference rows as Python dicts take several GB; serialized they take about what the file takes. Rows
reads like a list of dicts (len, index, iterate) and keeps, per column, how many rows have it, so that checks over
all rows (a reward's column, images) need no pass over them.
"""

from __future__ import annotations

import pickle
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

# pickle rather than JSON: rows from saved or parquet datasets can hold image bytes. Only rows this process
# serialized itself are ever unpickled.
_dump, _load = pickle.dumps, pickle.loads
# The distinct column sets seen (a dataset has one or a few): each row keeps the index of its own.
_KEY_SETS: list[tuple[str, ...]] = []
_KEY_SET_INDEX: dict[tuple[str, ...], int] = {}


def _key_set(row: dict) -> int:
    keys = tuple(row)
    index = _KEY_SET_INDEX.get(keys)
    if index is None:
        index = _KEY_SET_INDEX[keys] = len(_KEY_SETS)
        _KEY_SETS.append(keys)
    return index


class Rows(Sequence):
    def __init__(self, blobs: list[bytes] | None = None, key_sets: list[int] | None = None, image_slots: bool = False):
        self._blobs: list[bytes] = blobs if blobs is not None else []
        self._key_sets: list[int] = key_sets if key_sets is not None else []
        # Text rows of a dataset that has images get an empty image list and structured messages when read, so
        # that batches mixing both collate alike (see data/images.py).
        self.image_slots = image_slots

    @classmethod
    def of(cls, rows: Iterable[dict]) -> Rows:
        out = cls()
        for row in rows:
            out.append(row)
        return out

    def append(self, row: dict) -> None:
        self._blobs.append(_dump(row, protocol=5))
        self._key_sets.append(_key_set(row))

    def __len__(self) -> int:
        return len(self._blobs)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.select(range(len(self))[index])
        row = _load(self._blobs[index])
        if self.image_slots:
            from rlhf_lab.data.images import with_image_slot

            with_image_slot(row)
        return row

    def __iter__(self) -> Iterator[dict]:
        for i in range(len(self)):
            yield self[i]

    def __add__(self, other: Rows) -> Rows:
        return Rows.concat([self, other])

    def __eq__(self, other) -> bool:
        return isinstance(other, (Rows, list)) and list(self) == list(other)

    @property
    def counts(self) -> Counter:
        """Column -> how many rows have it."""
        out: Counter = Counter()
        for key_set, n in Counter(self._key_sets).items():
            for key in _KEY_SETS[key_set]:
                out[key] += n
        return out

    def rows_with(self, column: str) -> int:
        """How many rows have this column."""
        return self.counts[column]

    def select(self, indices: Iterable[int]) -> Rows:
        """These rows, in this order (an index may repeat)."""
        indices = list(indices)
        blobs, key_sets = self._blobs, self._key_sets
        return Rows([blobs[i] for i in indices], [key_sets[i] for i in indices], self.image_slots)

    def first_without(self, column: str) -> dict | None:
        """The first row lacking a column, or None."""
        index = next((i for i, k in enumerate(self._key_sets) if column not in _KEY_SETS[k]), None)
        return None if index is None else self[index]

    @staticmethod
    def concat(parts: Sequence[Rows]) -> Rows:
        out = Rows(image_slots=any(p.image_slots for p in parts))
        for part in parts:
            out._blobs.extend(part._blobs)
            out._key_sets.extend(part._key_sets)
        return out


def first_without(rows: Sequence[dict], column: str) -> dict | None:
    """The first row lacking a column, or None (Rows answer from their column sets, without decoding)."""
    if isinstance(rows, Rows):
        return rows.first_without(column)
    return next((row for row in rows if column not in row), None)
