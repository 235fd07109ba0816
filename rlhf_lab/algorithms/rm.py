"""Reward-model training on TRL's RewardTrainer: a one-score sequence classifier on preference pairs.
On a vision-language model the classifier scores (images, prompt, answer); see models/vision.py."""

from __future__ import annotations

from rlhf_lab.algorithms.common import TrainInputs, trainer_args, vision_pairs
from rlhf_lab.run import Run


def trl_dataset(rows: list[dict]):
    from datasets import Dataset

    # A margin column is used only when every row has one (TRL's collator reads it from all rows or none).
    keys = ["prompt", "chosen", "rejected"] + (["margin"] if all("margin" in r for r in rows) else [])
    return Dataset.from_list([{k: r[k] for k in keys} for r in rows])


def build(run: Run, inputs: TrainInputs):
    from trl import RewardConfig, RewardTrainer

    args = RewardConfig(
        **trainer_args(run, inputs.bf16, inputs.vision),
        center_rewards_coefficient=run.algorithm.center_rewards_coefficient,
        max_length=run.train.max_length,
    )
    inputs.model.config.pad_token_id = inputs.tokenizer.pad_token_id  # the score is read at the last real token
    if inputs.vision:
        from rlhf_lab.algorithms.vision import with_margin
        from rlhf_lab.algorithms.vision_trainers import VisionRewardTrainer

        margins = all("margin" in r for r in inputs.splits.train)
        return VisionRewardTrainer(args=args, **vision_pairs(run, inputs, extra=with_margin if margins else None))
    return RewardTrainer(
        args=args,
        **inputs.trainer_kwargs(trl_dataset(inputs.splits.train)),
    )
