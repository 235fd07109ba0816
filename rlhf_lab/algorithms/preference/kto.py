"""KTO on TRL's KTOTrainer, fed ms-swift rows (messages + label) converted to prompt/completion/label."""

from __future__ import annotations

import dataclasses
import random

from rlhf_lab.algorithms.common import TrainInputs, reference_model, trainer_args, trl_dataset
from rlhf_lab.algorithms.contract import lab
from rlhf_lab.algorithms.preference.config import KTOConfig
from rlhf_lab.config.run import Run
from rlhf_lab.data.rows import Rows

TRL_COLUMNS = ("prompt", "completion", "label")


def shuffled(rows: Rows, seed: int) -> Rows:
    # TRL reads KTO batches in order (its KL term pairs each row with a neighbour), so shuffle once here.
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    return rows.select(order)


def build(run: Run, inputs: TrainInputs):
    from trl import KTOConfig as TRLKTOConfig
    from trl import KTOTrainer

    from rlhf_lab.algorithms.lazy_rows import per_batch, row_indices
    from rlhf_lab.patches.scored_positions import score_only_labelled_positions
    from rlhf_lab.vision.batches import feed_images, index_dataset

    cfg: KTOConfig = run.algorithm
    # KTO's four passes (policy and reference, answer and KL answer) score only the answer, a third of a row here.
    score_only_labelled_positions()
    rows = shuffled(inputs.splits.train, run.train.seed)
    lazy = inputs.lazy and dataclasses.replace(inputs.lazy, rows=rows)
    args = TRLKTOConfig(
        **trainer_args(run, inputs.bf16, inputs.index_rows),
        beta=cfg.beta,
        desirable_weight=cfg.desirable_weight,
        undesirable_weight=cfg.undesirable_weight,
        loss_type=cfg.loss_type,
        max_length=run.train.max_length,
        precompute_ref_log_probs=cfg.precompute_ref_log_probs,
    )
    dataset = (
        index_dataset(rows) if inputs.vision else row_indices(len(rows)) if lazy else trl_dataset(rows, TRL_COLUMNS)
    )
    trainer = lab(per_batch(KTOTrainer) if lazy else KTOTrainer)(
        ref_model=reference_model(run, inputs, cfg.ref_model),
        args=args,
        **inputs.trainer_kwargs(dataset),
    )
    if inputs.vision:
        return feed_images(trainer, run, rows)
    return lazy.attach(trainer, TRL_COLUMNS, trainer.prepare_batch) if lazy else trainer
