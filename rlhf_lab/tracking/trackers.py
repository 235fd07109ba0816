"""Dashboards: wandb (offline unless an API key is configured) or tensorboard, wired into the trainer."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rlhf_lab.config.run import Run

log = logging.getLogger("rlhf_lab")


@dataclass
class Tracker:
    callbacks: list = field(default_factory=list)
    wandb_run: object = None

    def log_summary(self, result: dict) -> None:
        if self.wandb_run is None:
            return
        flat = {}
        for phase in ("eval_before", "eval_after"):
            for k, v in (result.get(phase) or {}).items():
                flat[f"{phase}/{k}"] = v
        for k in ("train_loss", "train_seconds", "seconds_per_step", "global_steps"):
            flat[k] = result[k]
        self.wandb_run.summary.update(flat)

    def log_media(self, result: dict, curves: Path | None) -> None:
        """The run's training curves (the report's picture) and its held-out evaluation as a table."""
        if self.wandb_run is None:
            return
        import wandb

        media = {}
        if curves is not None:
            media["report/curves"] = wandb.Image(str(curves))
        before, after = result.get("eval_before"), result.get("eval_after")
        if before or after:
            rows = [[k, (before or {}).get(k), (after or {}).get(k)] for k in (before or after)]
            media["report/evaluation"] = wandb.Table(columns=["metric", "before", "after"], data=rows)
        if media:
            self.wandb_run.log(media)

    def finish(self) -> None:
        # Finish every run, so that each job of a multirun gets its own wandb run.
        if self.wandb_run is not None:
            self.wandb_run.finish()
            self.wandb_run = None


def start_tracking(run: Run, wandb_mode: str | None) -> Tracker:
    """wandb_mode: as reachability.tracker_mode decided it, before the model loaded."""
    backend = run.logger.backend
    if backend == "none":
        return Tracker()
    if backend == "tensorboard":
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        writer = SummaryWriter(log_dir=str(run.run_dir / "tensorboard"))
        return Tracker(callbacks=[TensorBoardCallback(tb_writer=writer)])
    if backend == "wandb":
        import wandb
        from transformers.integrations import WandbCallback

        cfg = run.logger
        group = cfg.group or (run.sweep_dir.name if run.sweep_dir else None)
        # wandb's own WANDB_PROJECT and WANDB_DIR hold where the config leaves them unset.
        project = cfg.project or os.environ.get("WANDB_PROJECT") or "rlhf_lab"
        files = os.environ.get("WANDB_DIR") or str(run.run_dir)
        from rlhf_lab.config.secrets import mask_overrides

        # wandb records the command line (sys.argv) in its metadata: it gets the overrides masked, as typed.
        argv, sys.argv = sys.argv, [sys.argv[0], *mask_overrides(sys.argv[1:])]
        try:
            wandb_run = wandb.init(
                project=project,
                entity=cfg.entity,
                name=cfg.name or run.name,
                tags=list(cfg.tags) + [run.algorithm.name, run.choices.get("model", "")],
                group=group,
                config=run.resolved,
                dir=files,
                mode=wandb_mode,
                reinit="finish_previous",
            )
        finally:
            sys.argv = argv
        log.info("wandb run %s (%s), files under %s", wandb_run.name, wandb_mode, files)
        callbacks = [WandbCallback()]
        if run.algorithm.writes_completions:
            from rlhf_lab.tracking.completions import CompletionsToWandb

            callbacks.append(CompletionsToWandb(wandb_run))
        return Tracker(callbacks=callbacks, wandb_run=wandb_run)
    raise ValueError(f"unknown logger backend {backend!r}")
