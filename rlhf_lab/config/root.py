"""The root config: one node per group plus the `train` node."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from omegaconf import MISSING

from rlhf_lab.config.dataset import DatasetConfig
from rlhf_lab.config.fields import doc, doc_factory
from rlhf_lab.config.model import ModelConfig
from rlhf_lab.config.train import TrainConfig

GROUPS = ("algorithm", "model", "tuner", "dataset", "distributed", "logger")


@dataclass
class RootConfig:
    # Group nodes whose options have different schemas are typed by the option (see store.py).
    algorithm: Any = doc(MISSING, "The training algorithm and its settings (algorithm=<option>).")
    model: ModelConfig = doc(MISSING, "The model to train and how it is loaded (model=<option>).")
    tuner: Any = doc(MISSING, "Which parameters train: LoRA adapters or the whole model (tuner=<option>).")
    dataset: DatasetConfig = doc(MISSING, "Training and held-out data (dataset=<option>).")
    distributed: Any = doc(MISSING, "Processes and engine: one process, DDP, DeepSpeed or FSDP (distributed=<option>).")
    logger: Any = doc(MISSING, "Experiment tracker that adds a dashboard (logger=<option>).")
    train: TrainConfig = doc_factory(TrainConfig, "Trainer settings shared by every algorithm.")
    objective: Optional[str] = doc(
        None,
        "summary.json value a search optimises, dotted (e.g. eval_after.accuracy), returned by each job; null = none.",
    )
