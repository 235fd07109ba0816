"""The total reward of each answer, as every algorithm and evaluation counts it."""

from __future__ import annotations


def weighted_total(per_reward, weights):
    """[n answers, k rewards] x [k] -> [n]: the rewards weighted and summed; a reward's None (NaN) counts as 0,
    as in TRL's advantages."""
    return (per_reward * weights.to(per_reward.device)).nansum(dim=1)
