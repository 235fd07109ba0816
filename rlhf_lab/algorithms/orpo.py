"""ORPO on TRL's (experimental) ORPOTrainer: SFT plus an odds-ratio term, no reference model."""

from __future__ import annotations

from rlhf_lab.algorithms.common import TrainInputs, trainer_args
from rlhf_lab.algorithms.dpo import trl_dataset
from rlhf_lab.run import Run


def build(run: Run, inputs: TrainInputs):
    from trl.experimental.orpo import ORPOConfig as TRLORPOConfig
    from trl.experimental.orpo import ORPOTrainer

    args = TRLORPOConfig(**trainer_args(run, inputs.bf16), beta=run.algorithm.beta, max_length=run.train.max_length)
    return ORPOTrainer(
        args=args,
        **inputs.trainer_kwargs(trl_dataset(inputs.splits.train)),
    )
