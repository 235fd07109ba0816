"""Registers every schema in Hydra's ConfigStore under schema/<group>/<name>."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from rlhf_lab.schema.algorithm import CPOConfig, DPOConfig, KTOConfig, ORPOConfig, RewardModelConfig, SimPOConfig
from rlhf_lab.schema.dataset import DatasetConfig
from rlhf_lab.schema.distributed import DDPConfig, DeepSpeedConfig, FSDPConfig, SingleConfig
from rlhf_lab.schema.logger import NoneLoggerConfig, TensorboardLoggerConfig, WandbLoggerConfig
from rlhf_lab.schema.model import ModelConfig
from rlhf_lab.schema.online import GKDConfig, GRPOConfig
from rlhf_lab.schema.ppo import PPOConfig
from rlhf_lab.schema.root import RootConfig
from rlhf_lab.schema.tuner import FullTunerConfig, LoraTunerConfig

# group -> {schema name -> dataclass}. A new option of a group adds a line here and a YAML file.
SCHEMAS = {
    "algorithm": {
        "dpo": DPOConfig,
        "kto": KTOConfig,
        "cpo": CPOConfig,
        "simpo": SimPOConfig,
        "orpo": ORPOConfig,
        "rm": RewardModelConfig,
        "grpo": GRPOConfig,
        "gkd": GKDConfig,
        "ppo": PPOConfig,
    },
    "model": {"model": ModelConfig},
    "tuner": {"lora": LoraTunerConfig, "full": FullTunerConfig},
    "dataset": {"dataset": DatasetConfig},
    "distributed": {"single": SingleConfig, "ddp": DDPConfig, "deepspeed": DeepSpeedConfig, "fsdp": FSDPConfig},
    "logger": {"none": NoneLoggerConfig, "tensorboard": TensorboardLoggerConfig, "wandb": WandbLoggerConfig},
}

_registered = False


def register_schemas() -> None:
    global _registered
    if _registered:
        return
    cs = ConfigStore.instance()
    cs.store(name="root_schema", node=RootConfig)
    for group, options in SCHEMAS.items():
        for name, node in options.items():
            cs.store(group=f"schema/{group}", name=name, node=node)
    _registered = True


# The field whose value picks a group's schema in a resolved config (dapo's node says name: grpo).
_SCHEMA_FIELD = {"algorithm": "name", "tuner": "name", "distributed": "backend", "logger": "backend"}


def typed_config(resolved: dict):
    """A resolved config (plain containers, as saved in a run directory) typed again by the schemas, without a
    second Hydra composition: what worker processes build their Run from."""
    from omegaconf import OmegaConf

    from rlhf_lab.schema.train import TrainConfig

    register_schemas()
    nodes = {}
    for group, options in SCHEMAS.items():
        node = resolved[group]
        schema = options[node[_SCHEMA_FIELD[group]]] if group in _SCHEMA_FIELD else next(iter(options.values()))
        nodes[group] = OmegaConf.merge(OmegaConf.structured(schema), node)
    nodes["train"] = OmegaConf.merge(OmegaConf.structured(TrainConfig), resolved["train"])
    return OmegaConf.create(nodes)
