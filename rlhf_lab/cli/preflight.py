"""The checks a run makes before it writes or loads anything, run on their own: `--cfg job` is a dry run.

The config is composed the way the run would compose it (with its run directory), then validated as the run
validates it: every group's values, the rules between groups, the model and reward sources, the run directory
(the same run or none, and not already finished), and, for a dry run, every data row as the run would read it.
Nothing heavy is imported (no torch, transformers, trl or peft) and nothing is written.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from pathlib import Path

from rlhf_lab.paths import CONF_DIR

log = logging.getLogger("rlhf_lab")


@dataclass(frozen=True)
class Checked:
    """What a dry run found, for its report line."""

    overrides: tuple[str, ...]
    run_dir: Path
    train_rows: int | None
    val_rows: int | None
    resume_step: int | None

    def line(self) -> str:
        data = "" if self.train_rows is None else f"; {self.train_rows} training and {self.val_rows} held-out rows read"
        resume = (
            f"; would resume at step {self.resume_step}" if self.resume_step is not None else "; would start a new run"
        )
        return f"dry run: the config checks passed{data}{resume} in {self.run_dir}; nothing was written"


def compose(overrides: list[str], job_num: int | None = None):
    """(config without its hydra node, run directory, group choices), as a Hydra run (or job of a sweep) gets them."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    extra = [] if job_num is None else [f"hydra.job.num={job_num}"]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(CONF_DIR, version_base="1.3", job_name="rlhf_lab"):
            cfg = hydra_compose("config", overrides=[*overrides, *extra], return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        hc = cfg.hydra
        if job_num is None:
            from rlhf_lab.config.run import check_run_dir_setting

            check_run_dir_setting(hc.run.dir)
        run_dir = Path(hc.run.dir) if job_num is None else Path(hc.sweep.dir) / str(hc.sweep.subdir)
        choices = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra/")}
        with open_dict(cfg):
            del cfg["hydra"]
        return cfg, run_dir, choices
    finally:
        GlobalHydra.instance().clear()


def check(overrides: list[str], read_data: bool, job_num: int | None = None) -> Checked:
    """Every check a run makes before a model loads; raises the run's own UserError (one line) on the first problem."""
    from rlhf_lab.config.run import build_run
    from rlhf_lab.runtime.claim import check_free
    from rlhf_lab.runtime.ranks import is_main

    cfg, run_dir, choices = compose(overrides, job_num)
    if is_main():  # under torchrun the main process may already hold the directory the others are about to join
        check_free(run_dir)  # before Hydra writes its files into a directory a live run holds
    run = build_run(cfg, run_dir, choices=choices, overrides=tuple(overrides))
    if cfg.objective:
        from rlhf_lab.runtime.job import check_objective

        check_objective(cfg.objective)
    train_rows = val_rows = None
    if read_data:
        from rlhf_lab.data.load import load_splits

        splits = load_splits(run.dataset, run.spec.data_format, run.train.seed, images=run.spec.images)
        run.algorithm.check_data(splits.train + splits.val)
        train_rows, val_rows = len(splits.train), len(splits.val)
        # Then, as the run does, the models it loads and the dashboard's server.
        from rlhf_lab.runtime.reachability import check_models, tracker_mode

        check_models(run)
        tracker_mode(run.logger)
    return Checked(tuple(overrides), run_dir, train_rows, val_rows, run.resume.step if run.resume.path else None)


def sweep_jobs(overrides: list[str]) -> list[list[str]]:
    """The overrides of each job of a basic sweep (a,b values and ranges expanded, as Hydra's basic sweeper does)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = []
    for override in parsed:
        key = override.get_key_element()
        if override.is_sweep_override():
            choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            choices.append([f"{key}={override.get_value_element_as_str()}"])
    return [list(job) for job in itertools.product(*choices)]
