"""The run's rewards: checked at config time, built into trainer-ready callables at train time."""

from __future__ import annotations

from typing import Any

from rlhf_lab.rewards.custom import resolve_all
from rlhf_lab.rewards.wrap import NamedReward


def check_reward_specs(cfg: Any) -> None:
    """Resolve every reward (importing custom ones and checking their signatures); raises ConfigError."""
    resolve_all(cfg)


def build_rewards(cfg: Any) -> list[NamedReward]:
    return [NamedReward(name, fn) for name, fn in resolve_all(cfg)]
