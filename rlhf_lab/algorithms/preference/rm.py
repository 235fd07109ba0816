"""Reward-model training on TRL's RewardTrainer: a one-score sequence classifier on preference pairs.
On a vision-language model the classifier scores (images, prompt, answer); see vision/models.py."""

from __future__ import annotations

from rlhf_lab.algorithms.common import TrainInputs, trainer_args, trl_dataset, vision_pairs
from rlhf_lab.algorithms.contract import lab
from rlhf_lab.config.run import Run


def columns(rows) -> tuple[str, ...]:
    # A margin column is used only when every row has one (TRL's collator reads it from all rows or none).
    from rlhf_lab.data.rows import first_without

    return ("prompt", "chosen", "rejected") + (("margin",) if first_without(rows, "margin") is None else ())


def build(run: Run, inputs: TrainInputs):
    from trl import RewardConfig, RewardTrainer

    from rlhf_lab.algorithms.lazy_rows import per_batch, row_indices

    lazy = inputs.lazy
    args = RewardConfig(
        **trainer_args(run, inputs.bf16, inputs.index_rows),
        center_rewards_coefficient=run.algorithm.center_rewards_coefficient,
        max_length=run.train.max_length,
    )
    inputs.model.config.pad_token_id = inputs.tokenizer.pad_token_id  # the score is read at the last real token
    if inputs.vision:
        from rlhf_lab.vision.batches import with_margin
        from rlhf_lab.vision.trainers import VisionRewardTrainer

        margins = "margin" in columns(inputs.splits.train)
        return VisionRewardTrainer(args=args, **vision_pairs(run, inputs, extra=with_margin if margins else None))
    rows = inputs.splits.train
    trainer = lab(per_batch(RewardTrainer) if lazy else RewardTrainer)(
        args=args,
        **inputs.trainer_kwargs(row_indices(len(rows)) if lazy else trl_dataset(rows, columns(rows))),
    )
    return lazy.attach(trainer, columns(rows), trainer.prepare_batch) if lazy else trainer
