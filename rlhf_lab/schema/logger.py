"""Experiment trackers. metrics.jsonl and summary.json are always written; these add a dashboard."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from omegaconf import MISSING

from rlhf_lab.schema.checks import one_of


@dataclass
class LoggerConfig:
    backend: str = MISSING


@dataclass
class NoneLoggerConfig(LoggerConfig):
    backend: str = "none"


@dataclass
class TensorboardLoggerConfig(LoggerConfig):
    backend: str = "tensorboard"


@dataclass
class WandbLoggerConfig(LoggerConfig):
    backend: str = "wandb"
    # null: WANDB_PROJECT from the environment, else rlhf_lab.
    project: Optional[str] = None
    # null: WANDB_ENTITY from the environment, else the API key's default entity.
    entity: Optional[str] = None
    # Run name; null = <algorithm>-<model>-<the job's overrides or time>.
    name: Optional[str] = None
    tags: List[str] = field(default_factory=list)
    # auto: WANDB_MODE (or WANDB_DISABLED) from the environment, else online when an API key is configured
    # (WANDB_API_KEY or `wandb login`) and its server answers, else offline. online: a server that cannot be
    # reached is an error before training.
    mode: str = "auto"
    # Group of the run; null = the sweep directory for multirun jobs, none for single runs.
    group: Optional[str] = None

    def __post_init__(self) -> None:
        one_of("mode", self.mode, ("auto", "online", "offline", "disabled"))
