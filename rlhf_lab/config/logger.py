"""Experiment trackers. metrics.jsonl and summary.json are always written; these add a dashboard."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from omegaconf import MISSING

from rlhf_lab.config.checks import one_of
from rlhf_lab.config.fields import doc, doc_factory


@dataclass
class LoggerConfig:
    backend: str = doc(MISSING, "Tracker: none, tensorboard or wandb (set by the option).")
    verbose: bool = doc(
        False, "Also show the libraries' progress bars, warnings and log records on the console (always in the log)."
    )


@dataclass
class NoneLoggerConfig(LoggerConfig):
    backend: str = "none"


@dataclass
class TensorboardLoggerConfig(LoggerConfig):
    backend: str = "tensorboard"


@dataclass
class WandbLoggerConfig(LoggerConfig):
    backend: str = "wandb"
    project: Optional[str] = doc(None, "W&B project; null = WANDB_PROJECT from the environment, else rlhf_lab.")
    entity: Optional[str] = doc(None, "W&B entity; null = WANDB_ENTITY from the environment, else the key's default.")
    name: Optional[str] = doc(None, "Run name; null = <algorithm>-<model>-<the job's overrides or time>.")
    tags: List[str] = doc_factory(list, "Tags of the run.")
    # auto reads WANDB_MODE (or WANDB_DISABLED) first; the API key is WANDB_API_KEY or `wandb login`'s. online: a
    # server that cannot be reached is an error before training.
    mode: str = doc(
        "auto", "auto (online if an API key is set and the server answers, else offline), online, offline or disabled."
    )
    group: Optional[str] = doc(None, "Group of the run; null = the sweep directory for multirun jobs, else none.")

    def __post_init__(self) -> None:
        one_of("mode", self.mode, ("auto", "online", "offline", "disabled"))
