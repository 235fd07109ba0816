"""What an algorithm adds to a run's memory and compute, beside the policy: declared by each algorithm's options
(AlgorithmConfig.plan_facts), read by the planner."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PlanFacts:
    # Sequences in the training forward per row of the micro-batch (a pair is two: chosen and rejected).
    sequences_per_row: int = 1
    # Frozen models held beside the policy: role -> checkpoint (None = the policy's own checkpoint).
    frozen: dict[str, str | None] = field(default_factory=dict)
    # Models trained beside the policy with their own optimizer (PPO's value model): role -> checkpoint.
    trained: dict[str, str | None] = field(default_factory=dict)
    # Tokens generated per answer (0 = the algorithm does not generate).
    generated_tokens: int = 0
    # A merged copy of the policy that generation samples from (GRPO's generation_copy).
    generation_copy: bool = False
