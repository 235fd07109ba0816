"""Rows read and tokenized per batch (dataset.lazy_tokenize), so that a million-row file starts training at once.

The trainer is given a dataset of row indices. When the dataloader draws a batch, its rows are decoded from the
run's compact store, measured against train.max_length (data/lengths.py: a row the policy removes is replaced by
another row drawn with the seed, as ms-swift's lazy datasets do), prepared by the trainer's own dataset preparation
and collated by the trainer's own collator. Each batch thus holds exactly what up-front tokenization gives it.

TRL's DPO, KTO and reward trainers prepare a dataset in `_prepare_dataset` (a private method): `per_batch` skips it
for the index dataset and runs it on each batch instead. tests/test_lazy_rows.py fails by name if its signature
changes. GRPO and GKD tokenize per batch already (at generation time, in their collator): they only need the rows
decoded.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

from rlhf_lab.data.lengths import LengthCheck
from rlhf_lab.data.rows import Rows
from rlhf_lab.errors import DataError

INDEX = "index"
# Draws before giving up on finding a row within train.max_length (each draw is one tokenization).
MAX_DRAWS = 64


def row_indices(n: int):
    from datasets import Dataset

    return Dataset.from_dict({INDEX: list(range(n))})


@dataclass
class LazyPlan:
    """What a builder needs to train from rows drawn per batch: the rows, and the length check applied as drawn."""

    rows: Rows
    lengths: LengthCheck
    seed: int

    def draw(self, index: int) -> dict:
        """The row at index, or, if the length policy removes it, another row drawn with the seed."""
        row = self.rows[index]
        if self.lengths.keep(row):
            return row
        rng = random.Random(self.seed * 1_000_003 + index)
        for _ in range(MAX_DRAWS):
            row = self.rows[rng.randrange(len(self.rows))]
            if self.lengths.keep(row):
                return row
        raise DataError(
            row["row_source"].rpartition(":")[0],
            f"{MAX_DRAWS} rows drawn in a row are longer than "
            f"train.max_length={self.lengths.max_length} tokens; raise train.max_length",
        )

    def attach(
        self, trainer, columns: tuple[str, ...] | None, prepare: Callable[[list[dict]], list[dict]] | None = None
    ):
        """Give the trainer's collator decoded (and, with prepare, tokenized) rows instead of indices."""
        trainer.data_collator = RowBatches(self, trainer.data_collator, columns, prepare)
        return trainer


@dataclass
class RowBatches:
    """Collator: indices -> rows (their `columns`) -> prepare -> the trainer's own collator. Other keys of an example
    (e.g. precomputed reference log-probs) are carried over."""

    plan: LazyPlan
    inner: Callable
    columns: tuple[str, ...] | None
    prepare: Callable[[list[dict]], list[dict]] | None

    def __call__(self, examples: list[dict]):
        rows = [self.plan.draw(e[INDEX]) for e in examples]
        if self.columns is not None:
            rows = [{k: r[k] for k in self.columns if k in r} for r in rows]
        if self.prepare is not None:
            rows = self.prepare(rows)
        extra = [{k: v for k, v in e.items() if k != INDEX} for e in examples]
        return self.inner([{**row, **more} for row, more in zip(rows, extra)])


@contextmanager
def _quiet():
    """No progress bar or info log per batch from datasets."""
    from datasets.utils import logging as ds_logging

    bars = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars:
            ds_logging.enable_progress_bar()


def per_batch(trainer_class):
    """trainer_class, with its preparation of the training set skipped for an index dataset and offered per batch
    as prepare_batch (TRL's DPOTrainer, KTOTrainer, RewardTrainer)."""

    class PerBatch(trainer_class):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            if dataset_name == "train" and dataset.column_names == [INDEX]:
                return dataset
            return super()._prepare_dataset(dataset, processing_class, args, dataset_name)

        def prepare_batch(self, rows: list[dict]) -> list[dict]:
            from datasets import Dataset

            # A batch is a handful of rows: preparing it in worker processes would cost more than it saves.
            args = copy.copy(self.args)
            args.dataset_num_proc = None
            with _quiet():
                # "batch", not "train": KTO reports the desirable/undesirable balance of the training set only once.
                prepared = super()._prepare_dataset(Dataset.from_list(rows), self.processing_class, args, "batch")
            if len(prepared) != len(rows):  # TRL drops rows whose prompt fills max_length; the length check did first
                raise DataError("dataset", f"{len(rows) - len(prepared)} rows of a batch were dropped while tokenizing")
            return prepared.to_list()

    PerBatch.__name__ = PerBatch.__qualname__ = f"PerBatch{trainer_class.__name__}"
    return PerBatch
