"""Registers every schema in Hydra's ConfigStore under schema/<group>/<name>."""

from __future__ import annotations

import functools

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from rlhf_lab.config.dataset import DatasetConfig
from rlhf_lab.config.distributed import DDPConfig, DeepSpeedConfig, FSDPConfig, SingleConfig
from rlhf_lab.config.logger import NoneLoggerConfig, TensorboardLoggerConfig, WandbLoggerConfig
from rlhf_lab.config.model import ModelConfig
from rlhf_lab.config.root import RootConfig
from rlhf_lab.config.tuner import FullTunerConfig, LoraTunerConfig

# group -> {schema name -> dataclass}. Algorithms come from their registry entries (see schemas()); a new option of
# another group adds a line here and a YAML file.
_OTHER_GROUPS = {
    "model": {"model": ModelConfig},
    "tuner": {"lora": LoraTunerConfig, "full": FullTunerConfig},
    "dataset": {"dataset": DatasetConfig},
    "distributed": {"single": SingleConfig, "ddp": DDPConfig, "deepspeed": DeepSpeedConfig, "fsdp": FSDPConfig},
    "logger": {"none": NoneLoggerConfig, "tensorboard": TensorboardLoggerConfig, "wandb": WandbLoggerConfig},
}


@functools.cache
def schemas() -> dict[str, dict[str, type]]:
    """Every group's options and their schema dataclasses."""
    from rlhf_lab.algorithms.registry import (
        ALGORITHMS,  # the registry names each algorithm's schema (and imports this package)
    )

    return {"algorithm": {name: spec.load_schema() for name, spec in ALGORITHMS.items()}, **_OTHER_GROUPS}


_registered = False


def register_schemas() -> None:
    global _registered
    if _registered:
        return
    cs = ConfigStore.instance()
    cs.store(name="root_schema", node=RootConfig)
    for group, options in schemas().items():
        for name, node in options.items():
            if group == "algorithm":  # its name (the registry key) is given here, not written again in the dataclass
                node = OmegaConf.merge(OmegaConf.structured(node), {"name": name})
            cs.store(group=f"schema/{group}", name=name, node=node)
    _registered = True


# The field whose value picks a group's schema in a resolved config (dapo's node says name: grpo); its option sets it.
SCHEMA_FIELD = {"algorithm": "name", "tuner": "name", "distributed": "backend", "logger": "backend"}


def typed_config(resolved: dict):
    """A resolved config (plain containers, as saved in a run directory) typed again by the schemas, without a
    second Hydra composition: what worker processes build their Run from."""
    from omegaconf import OmegaConf

    from rlhf_lab.config.train import TrainConfig

    register_schemas()
    nodes = {}
    for group, options in schemas().items():
        node = resolved[group]
        schema = options[node[SCHEMA_FIELD[group]]] if group in SCHEMA_FIELD else next(iter(options.values()))
        nodes[group] = OmegaConf.merge(OmegaConf.structured(schema), node)
    nodes["train"] = OmegaConf.merge(OmegaConf.structured(TrainConfig), resolved["train"])
    return OmegaConf.create(nodes)
