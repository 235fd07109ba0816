"""Advantages of grouped answers by ms-swift's estimators (algorithm.advantage_estimator).

Answers come in consecutive groups of n (the answers of one prompt). A reward of NaN marks an answer no reward
could score: it stays out of every baseline and statistic and gets advantage 0, as in TRL.

- grpo: A_i = (r_i - mean_group(r)) / std(r)
- rloo: A_i = (r_i - mean_{j != i in the group}(r_j)) / std(r)  (leave-one-out baseline)
- reinforce_plus_plus: A~_i = r_i - mean_group(r);  A_i = A~_i / std(A~)  (the std of the centred rewards)

std is taken per group (scale_rewards=group) or over the batch (batch), unbiased, plus 1e-4; none divides by
nothing. With kl_in_reward the rewards are first lowered by beta x (the answer's summed log-ratio to the reference).
"""

from __future__ import annotations

import torch
from trl.trainer.utils import nanstd  # unbiased, NaN-aware: the std TRL's own GRPO advantages use

EPS = 1e-4


def advantages(rewards: torch.Tensor, n: int, estimator: str, scale: str) -> torch.Tensor:
    """[groups x n] rewards (flat) -> advantages (flat), by the formulas in the module docstring."""
    grouped = rewards.view(-1, n).float()
    valid = ~torch.isnan(grouped)
    count = valid.sum(dim=1, keepdim=True)
    total = torch.nansum(grouped, dim=1, keepdim=True)
    # rloo's leave-one-out mean is NaN (then advantage 0) where no other answer of the group was scored.
    baseline = (total - grouped) / (count - 1) if estimator == "rloo" else total / count
    centred = grouped - baseline
    if scale != "none":
        source = centred if estimator == "reinforce_plus_plus" else grouped
        std = nanstd(source, dim=1).unsqueeze(1) if scale == "group" else nanstd(source)
        centred = centred / (torch.nan_to_num(std, nan=0.0) + EPS)
    return torch.nan_to_num(centred, nan=0.0, posinf=0.0, neginf=0.0).view(-1)
