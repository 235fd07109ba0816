"""DPO on TRL's DPOTrainer, with the ms-swift parameters TRL 1.16 lacks implemented on top of its losses."""

from __future__ import annotations

from rlhf_lab.algorithms.common import TrainInputs, reference_model, trainer_args, trl_dataset
from rlhf_lab.algorithms.contract import lab
from rlhf_lab.algorithms.preference.config import DPOConfig
from rlhf_lab.config.run import Run


def loss_terms(cfg: DPOConfig) -> tuple[list[str], list[float]]:
    """The (loss_type, loss_weights) lists handed to TRL for our DPO settings.

    - label_smoothing with sigmoid is conservative DPO (cDPO), which TRL 1.16 ignores:
      (1-e)*(-logsig(x)) + e*(-logsig(-x)). TRL's robust loss is [(1-e)*(-logsig(x)) + e*logsig(-x)] / (1-2e),
      so cDPO = 2(1-e) * sigmoid - (1-2e) * robust, exactly, on TRL's own code path.
    - rpo_alpha (RPO) adds rpo_alpha times the chosen answer's NLL: TRL's 'sft' term.
    """
    losses = cfg.losses
    weights = list(cfg.loss_weights) if cfg.loss_weights is not None else [1.0] * len(losses)
    out_losses: list[str] = []
    out_weights: list[float] = []
    eps = cfg.label_smoothing
    for loss, weight in zip(losses, weights):
        if loss == "sigmoid" and eps > 0:
            out_losses += ["sigmoid", "robust"]
            out_weights += [2 * (1 - eps) * weight, -(1 - 2 * eps) * weight]
        else:
            out_losses.append(loss)
            out_weights.append(weight)
    if cfg.rpo_alpha > 0:
        out_losses.append("sft")
        out_weights.append(cfg.rpo_alpha)
    return out_losses, out_weights


TRL_COLUMNS = ("prompt", "chosen", "rejected")


def build(run: Run, inputs: TrainInputs):
    from trl import DPOConfig as TRLDPOConfig
    from trl import DPOTrainer

    from rlhf_lab.algorithms.lazy_rows import per_batch, row_indices
    from rlhf_lab.patches.scored_positions import score_only_labelled_positions
    from rlhf_lab.patches.shared_prompt import share_prompts_in
    from rlhf_lab.vision.batches import feed_images, index_dataset

    cfg: DPOConfig = run.algorithm
    score_only_labelled_positions()
    losses, weights = loss_terms(cfg)
    rows = inputs.splits.train
    lazy = inputs.lazy
    args = TRLDPOConfig(
        **trainer_args(run, inputs.bf16, inputs.index_rows),
        beta=cfg.beta,
        loss_type=losses,
        loss_weights=weights,
        label_smoothing=cfg.label_smoothing,
        max_length=run.train.max_length,
        precompute_ref_log_probs=cfg.precompute_ref_log_probs,
    )
    dataset = (
        index_dataset(rows) if inputs.vision else row_indices(len(rows)) if lazy else trl_dataset(rows, TRL_COLUMNS)
    )
    trainer = lab(per_batch(DPOTrainer) if lazy else DPOTrainer)(
        ref_model=reference_model(run, inputs, cfg.ref_model),
        args=args,
        **inputs.trainer_kwargs(dataset),
    )
    if inputs.vision:
        return feed_images(trainer, run, rows)
    if lazy:
        lazy.attach(trainer, TRL_COLUMNS, trainer.prepare_batch)
    if cfg.share_prompt and inputs.processor is None:  # vision-language models place positions their own way
        share_prompts_in(trainer)
    return trainer
