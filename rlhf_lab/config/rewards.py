"""Options of the algorithms that score their own answers with rewards (GRPO and its recipes, PPO).

Names and defaults follow ms-swift's `swift rlhf`; the built-in rewards read their settings from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional
from urllib.parse import urlparse

from rlhf_lab.config.algorithm import AlgorithmConfig, revision_field, trust_field
from rlhf_lab.config.checks import positive
from rlhf_lab.config.fields import doc, doc_factory
from rlhf_lab.errors import ConfigError


def row_error(row: dict, field: str, message: str):
    """A DataError naming the file and line the row came from."""
    from rlhf_lab.data.formats import ROW_SOURCE
    from rlhf_lab.errors import DataError

    path, _, line = row[ROW_SOURCE].rpartition(":")
    return DataError(path, message, line=int(line), field=field)


@dataclass
class RewardOptions(AlgorithmConfig):
    max_completion_length: int = doc(512, "Most tokens generated per answer.")
    log_completions: bool = doc(
        False, "Each logged step's prompts, answers and rewards to checkpoints/completions/ and the trackers."
    )
    # Dotted paths: my_pkg.rewards.fn or my_pkg.rewards:fn; {_target_: ..., kwargs} objects are built with Hydra.
    reward_funcs: List[Any] = doc_factory(
        list, "Rewards: built-in names (accuracy, format, cosine, repetition, soft_overlong), dotted paths or objects."
    )
    reward_weights: Optional[List[float]] = doc(
        None, "One weight per reward (reward_funcs first, then reward_server, then reward_model); null = 1.0 each."
    )
    reward_server: Optional[str] = doc(
        None, "URL of a reward server (POST JSON, see rewards/remote.py; `serve-reward`), scored as one more reward."
    )
    reward_server_timeout: float = doc(60.0, "Seconds a reward server request may take before it is retried.")
    reward_server_retries: int = doc(3, "Further tries of a failed reward server request (backoff 1 s, doubling).")
    reward_server_concurrency: int = doc(4, "Reward server requests in flight at once.")
    reward_server_batch_size: int = doc(32, "Answers per reward server request.")
    reward_model: Optional[str] = doc(
        None, "Path of a trained reward model (e.g. an algorithm=rm run's saved model), scored as one more reward."
    )
    reward_model_revision: Optional[str] = revision_field("the reward model")
    reward_model_trust_remote_code: bool = trust_field("the reward model")
    # soft_overlong: answers longer than soft_max_length - soft_cache_length lose up to 1, linearly.
    soft_max_length: Optional[int] = doc(
        None, "soft_overlong reward: the length at which the full penalty of -1 applies; null = max_completion_length."
    )
    soft_cache_length: Optional[int] = doc(
        None, "soft_overlong reward: the penalty grows over this many tokens before soft_max_length."
    )
    # cosine: rewards between length 0 and cosine_max_len are interpolated on a cosine.
    cosine_min_len_value_wrong: float = doc(-0.5, "cosine reward: the reward of a wrong answer of length 0.")
    cosine_max_len_value_wrong: float = doc(0.0, "cosine reward: the reward of a wrong answer at cosine_max_len.")
    cosine_min_len_value_correct: float = doc(1.0, "cosine reward: the reward of a right answer of length 0.")
    cosine_max_len_value_correct: float = doc(0.5, "cosine reward: the reward of a right answer at cosine_max_len.")
    cosine_max_len: Optional[int] = doc(
        None, "cosine reward: the length of the *_max_len_value rewards; null = max_completion_length."
    )
    repetition_n_grams: int = doc(3, "repetition reward: the n-gram size.")
    repetition_max_penalty: float = doc(-1.0, "repetition reward: the penalty (<= 0) of an answer of repeats only.")

    @property
    def writes_completions(self) -> bool:
        return self.log_completions

    def __post_init__(self) -> None:
        positive("max_completion_length", self.max_completion_length)
        if not self.reward_funcs and self.reward_model is None and self.reward_server is None and not self.own_reward:
            raise ConfigError(
                "reward_funcs",
                f"{self.name.upper()} needs at least one reward: list reward functions (e.g. "
                "algorithm.reward_funcs=[accuracy,format]), give algorithm.reward_model=PATH or "
                "algorithm.reward_server=URL",
            )
        n_rewards = len(self.reward_funcs) + (self.reward_server is not None) + (self.reward_model is not None)
        if self.reward_weights is not None and len(self.reward_weights) != n_rewards:
            raise ConfigError(
                "reward_weights",
                f"has {len(self.reward_weights)} weights for {n_rewards} rewards (reward_funcs, then reward_server, "
                "then reward_model); give one per reward",
            )
        if self.reward_server is not None:
            parsed = urlparse(self.reward_server)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise ConfigError(
                    "reward_server", f"must be an http:// or https:// URL with a host, got {self.reward_server!r}"
                )
        positive("reward_server_timeout", self.reward_server_timeout)
        positive("reward_server_retries", self.reward_server_retries, allow_zero=True)
        positive("reward_server_concurrency", self.reward_server_concurrency)
        positive("reward_server_batch_size", self.reward_server_batch_size)
        if self.soft_max_length is not None:
            positive("soft_max_length", self.soft_max_length)
        if "soft_overlong" in self.reward_funcs and self.soft_cache_length is None:
            raise ConfigError(
                "soft_cache_length",
                "the soft_overlong reward needs it (how many tokens before "
                "soft_max_length the penalty starts), e.g. algorithm.soft_cache_length=128",
            )
        if self.soft_cache_length is not None:
            positive("soft_cache_length", self.soft_cache_length)
            if self.soft_cache_length >= self.soft_length:
                raise ConfigError(
                    "soft_cache_length",
                    f"must be below soft_max_length ({self.soft_length}, null = max_completion_length), got "
                    f"{self.soft_cache_length}; lower algorithm.soft_cache_length",
                )
        positive("repetition_n_grams", self.repetition_n_grams)
        if self.repetition_max_penalty > 0:
            raise ConfigError(
                "repetition_max_penalty", f"is a penalty, so must be <= 0, got {self.repetition_max_penalty}"
            )

    @property
    def own_reward(self) -> bool:
        """Whether something besides the reward settings may score answers (checked with the run)."""
        return False

    @property
    def soft_length(self) -> int:
        return self.soft_max_length or self.max_completion_length

    def check_data(self, rows: list[dict]) -> None:
        from rlhf_lab.data.rows import first_without
        from rlhf_lab.rewards.custom import needed_columns, resolve_all

        for name, reward in resolve_all(self):
            for column in needed_columns(reward):
                missing = first_without(rows, column)
                if missing is not None:
                    raise row_error(
                        missing, column, f"missing; reward {name!r} reads it (add it to every row, or drop the reward)"
                    )

    extra_models = ("reward_model",)

    def model_paths(self) -> dict[str, str]:
        return {"reward_model": self.reward_model} if self.reward_model else {}

    def service_urls(self) -> dict[str, str]:
        return {"reward_server": self.reward_server} if self.reward_server else {}

    def check_run(self, parts: dict) -> None:
        from rlhf_lab.rewards.registry import check_reward_specs

        # Custom rewards are imported and their signatures checked here, before any model loads.
        check_reward_specs(self)
