"""ORPO on TRL's (experimental) ORPOTrainer: SFT plus an odds-ratio term, no reference model.
With images, vision/trainers.py feeds the same trainer vision batches."""

from __future__ import annotations

from rlhf_lab.algorithms.common import TrainInputs, trainer_args, trl_dataset, vision_pairs
from rlhf_lab.algorithms.contract import lab
from rlhf_lab.algorithms.preference.dpo import TRL_COLUMNS
from rlhf_lab.config.run import Run


def build(run: Run, inputs: TrainInputs):
    from trl.experimental.orpo import ORPOConfig as TRLORPOConfig
    from trl.experimental.orpo import ORPOTrainer

    args = TRLORPOConfig(
        **trainer_args(run, inputs.bf16, inputs.vision), beta=run.algorithm.beta, max_length=run.train.max_length
    )
    if inputs.vision:
        from rlhf_lab.vision.trainers import VisionORPOTrainer

        return VisionORPOTrainer(args=args, **vision_pairs(run, inputs))
    return lab(ORPOTrainer)(
        args=args,
        **inputs.trainer_kwargs(trl_dataset(inputs.splits.train, TRL_COLUMNS)),
    )
