"""How many processes and which engine (the scale-out backends plug in here)."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING

from rlhf_lab.errors import ConfigError
from rlhf_lab.schema.checks import positive


@dataclass
class DistributedConfig:
    backend: str = MISSING
    nproc_per_node: int = 1
    nnodes: int = 1

    def __post_init__(self) -> None:
        positive("nproc_per_node", self.nproc_per_node)
        positive("nnodes", self.nnodes)


@dataclass
class SingleConfig(DistributedConfig):
    backend: str = "single"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.nproc_per_node != 1 or self.nnodes != 1:
            raise ConfigError("nproc_per_node", "distributed=single runs one process; leave nproc_per_node and nnodes at 1")
