"""The run's rewards: checked at config time, built into trainer-ready callables at train time."""

from __future__ import annotations

from typing import Any

from rlhf_lab.rewards.custom import resolve_all
from rlhf_lab.rewards.wrap import NamedReward


def check_reward_specs(cfg: Any) -> None:
    """Resolve every reward (importing custom ones and checking their signatures); raises ConfigError."""
    resolve_all(cfg)


def build_rewards(cfg: Any) -> list[NamedReward]:
    """reward_funcs, then the reward server (the reward model, when there is one, is the trainer's to add)."""
    rewards = [NamedReward(name, fn) for name, fn in resolve_all(cfg)]
    if cfg.reward_server is not None:
        from rlhf_lab.rewards.http import Retrying
        from rlhf_lab.rewards.remote import RewardServer

        policy = Retrying(cfg.reward_server_timeout, cfg.reward_server_retries, backoff=1.0)
        server = RewardServer(cfg.reward_server, policy, cfg.reward_server_concurrency, cfg.reward_server_batch_size)
        rewards.append(NamedReward("reward_server", server))
    return rewards
