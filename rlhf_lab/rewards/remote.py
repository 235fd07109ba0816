"""Rewards scored by a service over HTTP: a reward server speaking rlhf_lab's protocol (algorithm.reward_server),
or an LLM judge (rewards/judge.py). Requests go out concurrently, each with a timeout and retries with backoff.

The protocol (what `python -m rlhf_lab serve-reward` speaks, and what any server must answer):

    POST <reward_server>     {"prompts": [...], "completions": ["...", ...], "columns": {"solution": [...], ...}}
    200                      {"rewards": [0.7, null, ...]}

prompts are chat messages ([{"role": "user", "content": ...}]) or plain strings, one per answer; columns hold the
dataset's extra columns (JSON values only), one list entry per answer; rewards holds one number per answer, or null
for an answer the server cannot score. HTTP 408, 429 and 5xx, timeouts and refused connections are retried; any
other 4xx, or an answer of the wrong shape, is not.

When a service stays down, the reward records why and scores the batch as unscorable; the trainer then calls
stop_if_down on every process (after the rewards were gathered, so no process is left waiting) and the run stops
with a checkpoint instead of training on missing rewards.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor

from rlhf_lab.errors import RewardError, RewardServiceDown
from rlhf_lab.rewards.http import Retrying, ServiceRefused, ServiceUnavailable, post_json

# Reward kwargs that are the trainer's, not dataset columns.
_NOT_COLUMNS = {"completion_ids", "trainer_state"}


def jsonable(values) -> bool:
    try:
        json.dumps(values)
    except (TypeError, ValueError):
        return False
    return True


class RemoteReward:
    """Scores chunks of answers concurrently through score_chunk; a service that stays down is recorded, not raised
    (see the module docstring)."""

    __name__ = "remote"

    def __init__(self, policy: Retrying, concurrency: int, batch_size: int):
        self.policy = policy
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.failure: str | None = None

    def score_chunk(self, prompts: list, completions: list[str], columns: dict) -> list[float | None]:
        raise NotImplementedError

    def __call__(self, completions: list[str], prompts=None, **kwargs) -> list[float | None]:
        n = len(completions)
        prompts = list(prompts) if prompts is not None else [""] * n
        columns = {
            k: list(v)
            for k, v in kwargs.items()
            if k not in _NOT_COLUMNS and not k.startswith("_") and isinstance(v, list) and len(v) == n and jsonable(v)
        }
        starts = range(0, n, self.batch_size)
        chunks = [
            (
                prompts[s : s + self.batch_size],
                completions[s : s + self.batch_size],
                {k: v[s : s + self.batch_size] for k, v in columns.items()},
            )
            for s in starts
        ]
        try:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(chunks)) or 1) as pool:
                scored = list(pool.map(lambda chunk: self.score_chunk(*chunk), chunks))
        except ServiceUnavailable as e:
            self.failure = f"reward {self.__name__!r}: {e}"
            return [None] * n
        except ServiceRefused as e:
            raise RewardError(f"reward {self.__name__!r}: {e}") from None
        return [value for chunk in scored for value in chunk]

    def take_failure(self) -> str | None:
        failure, self.failure = self.failure, None
        return failure


def checked_rewards(answer: dict, expected: int, url: str) -> list[float | None]:
    rewards = answer.get("rewards")
    if not isinstance(rewards, list) or len(rewards) != expected:
        got = f"{len(rewards)} rewards" if isinstance(rewards, list) else f"keys {sorted(answer)}"
        raise ServiceRefused(
            f"{url} answered {got}; the protocol wants {{'rewards': [one number or null per answer]}} ({expected} here)"
        )
    out = []
    for value in rewards:
        if value is None:
            out.append(None)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out.append(float(value))
        else:
            raise ServiceRefused(f"{url} answered the reward {value!r}; expected a finite number or null")
    return out


class RewardServer(RemoteReward):
    """algorithm.reward_server: a server speaking the protocol above."""

    __name__ = "reward_server"

    def __init__(self, url: str, policy: Retrying, concurrency: int, batch_size: int):
        super().__init__(policy, concurrency, batch_size)
        self.url = url

    def score_chunk(self, prompts, completions, columns):
        answer = post_json(self.url, {"prompts": prompts, "completions": completions, "columns": columns}, self.policy)
        return checked_rewards(answer, len(completions), self.url)


def stop_if_down(rewards) -> None:
    """After a scoring round, on every process together: stop everywhere if a service stayed down on any."""
    from rlhf_lab.training.stop_callback import stop_everywhere

    failures = [f for f in (take_failure(r) for r in rewards) if f]
    if stop_everywhere(bool(failures)):
        raise RewardServiceDown(failures[0] if failures else "a reward service stayed down on another process")


def take_failure(reward) -> str | None:
    target = getattr(reward, "fn", reward)  # a NamedReward wraps the reward itself
    return target.take_failure() if isinstance(target, RemoteReward) else None
