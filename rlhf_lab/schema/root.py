"""The root config: one node per group plus the `train` node."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

from rlhf_lab.schema.dataset import DatasetConfig
from rlhf_lab.schema.model import ModelConfig
from rlhf_lab.schema.train import TrainConfig

GROUPS = ("algorithm", "model", "tuner", "dataset", "distributed", "logger")


@dataclass
class RootConfig:
    # Group nodes whose options have different schemas are typed by the option (see store.py).
    algorithm: Any = MISSING
    model: ModelConfig = MISSING
    tuner: Any = MISSING
    dataset: DatasetConfig = MISSING
    distributed: Any = MISSING
    logger: Any = MISSING
    train: TrainConfig = field(default_factory=TrainConfig)
    # The summary.json value a search maximises or minimises, dotted (e.g. eval_after.accuracy); each job returns
    # it to the sweeper (Optuna). null: jobs return nothing.
    objective: Optional[str] = None
