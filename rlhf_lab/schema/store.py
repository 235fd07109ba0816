"""Registers every schema in Hydra's ConfigStore under schema/<group>/<name>."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from rlhf_lab.schema.algorithm import CPOConfig, DPOConfig, KTOConfig, ORPOConfig, RewardModelConfig, SimPOConfig
from rlhf_lab.schema.dataset import DatasetConfig
from rlhf_lab.schema.distributed import SingleConfig
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
    "distributed": {"single": SingleConfig},
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
