"""CPO and SimPO on TRL's (experimental) CPOTrainer: reference-free, so no reference model is loaded.
With images, vision/trainers.py feeds the same trainer vision batches."""

from __future__ import annotations

from rlhf_lab.algorithms.common import TrainInputs, trainer_args, trl_dataset, vision_pairs
from rlhf_lab.algorithms.contract import lab
from rlhf_lab.algorithms.preference.dpo import TRL_COLUMNS
from rlhf_lab.config.run import Run


def build(run: Run, inputs: TrainInputs):
    from trl.experimental.cpo import CPOConfig as TRLCPOConfig
    from trl.experimental.cpo import CPOTrainer

    cfg = run.algorithm  # CPOConfig or SimPOConfig: both name their TRL loss type
    extra = {"simpo_gamma": cfg.simpo_gamma} if cfg.trl_loss_type == "simpo" else {}
    args = TRLCPOConfig(
        **trainer_args(run, inputs.bf16, inputs.vision),
        beta=cfg.beta,
        cpo_alpha=cfg.cpo_alpha,
        loss_type=cfg.trl_loss_type,
        label_smoothing=cfg.label_smoothing,
        max_length=run.train.max_length,
        **extra,
    )
    if inputs.vision:
        from rlhf_lab.vision.trainers import VisionCPOTrainer

        return VisionCPOTrainer(args=args, **vision_pairs(run, inputs))
    return lab(CPOTrainer)(
        args=args,
        **inputs.trainer_kwargs(trl_dataset(inputs.splits.train, TRL_COLUMNS)),
    )
