"""Turn `algorithm.reward_funcs` entries into reward callables, checking each one before any model loads.

An entry is a built-in name (rewards/builtin.py), a dotted path to a function or class (`my_pkg.rewards.fn`
or `my_pkg.rewards:fn`; a class is instantiated without arguments), or a `{_target_: ..., ...}` object that
Hydra instantiates with the other keys as arguments (add `_partial_: true` to bind arguments of a function).

The contract every reward meets:

    def my_reward(completions: list[str], **kwargs) -> list[float | None]

completions are the answers' texts; kwargs hold the dataset's extra columns (one list entry per answer, e.g.
`solution`), `prompts` (the chat messages), `completion_ids` (token ids) and `trainer_state`. Return one float
per answer, or None for an answer it cannot score.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import json
from collections.abc import Callable
from typing import Any

from rlhf_lab.errors import ConfigError
from rlhf_lab.rewards.builtin import BUILTIN


def _key(i: int) -> str:
    return f"algorithm.reward_funcs[{i}]"


def import_dotted(path: str, key: str, what: str = "reward") -> Any:
    """The object at `pkg.module.name` or `pkg.module:name` (rewards, tools, environments); ConfigError if none."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(
            key, f"cannot import {module_name!r} for {what} {path!r} ({e}); is it on PYTHONPATH?"
        ) from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(key, f"module {module_name!r} has no {attr!r}") from None


def instantiate_spec(spec: dict, key: str) -> Any:
    """A {_target_: ..., ...} object built by Hydra; ConfigError naming the key if it cannot be."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(spec)
    except InstantiationException as e:
        raise ConfigError(key, f"cannot build {spec['_target_']!r}: {' '.join(str(e).split())[:300]}") from None


def check_signature(reward: Any, key: str) -> None:
    """A reward must be callable, take `completions` and accept **kwargs (it receives every dataset column)."""
    if not callable(reward):
        raise ConfigError(key, f"{reward!r} is not callable; a reward is a function or an object with __call__")
    try:
        params = inspect.signature(reward).parameters.values()
    except (TypeError, ValueError):
        return  # a builtin or C callable: nothing to inspect
    kinds = {p.kind for p in params}
    names = {p.name for p in params}
    if inspect.Parameter.VAR_KEYWORD not in kinds:
        raise ConfigError(
            key,
            f"reward {reward_name(reward)!r} must accept **kwargs (it is called with every dataset column); "
            "signature: fn(completions: list[str], **kwargs) -> list[float | None]",
        )
    if "completions" not in names:
        raise ConfigError(
            key,
            f"reward {reward_name(reward)!r} must take a `completions` argument (the answers' texts); "
            "signature: fn(completions: list[str], **kwargs) -> list[float | None]",
        )


def reward_name(reward: Any) -> str:
    return getattr(reward, "__name__", None) or type(reward).__name__


# Custom rewards built in this job, by entry: the config checks, the data checks and training share one object (a
# judge opens its client, or a reward model loads, once). Emptied when a job ends (forget_built), so that the next
# job of a sweep gets fresh objects.
_BUILT: dict[str, Any] = {}


def forget_built() -> None:
    _BUILT.clear()


def resolve(spec: Any, i: int, cfg: Any) -> tuple[str, Callable]:
    """(name, callable) for one reward_funcs entry; a custom one is built once per job (see _BUILT)."""
    key = _key(i)
    if isinstance(spec, str) and spec in BUILTIN:
        return spec, BUILTIN[spec](cfg)
    memo = f"{i}:{json.dumps(spec, sort_keys=True, default=str)}"
    if memo not in _BUILT:
        reward = _build(spec, key)
        check_signature(reward, key)
        _BUILT[memo] = reward
    reward = _BUILT[memo]
    return reward_name(reward), reward


def _build(spec: Any, key: str) -> Any:
    if isinstance(spec, str):
        if "." not in spec and ":" not in spec:
            close = difflib.get_close_matches(spec, BUILTIN, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                key,
                f"unknown reward {spec!r}; {hint}built-in: {', '.join(BUILTIN)}; or give a dotted path "
                "(my_pkg.rewards.fn) or a {_target_: ...} object",
            )
        target = import_dotted(spec, key)
        if not inspect.isclass(target):
            return target
        # The rules a {_target_: ...} object follows: a class that cannot be built is one line naming the entry.
        try:
            return target()
        except Exception as e:  # noqa: BLE001 - the user's constructor: whatever it raises is reported as its own
            raise ConfigError(
                key, f"cannot build {spec!r}: {type(e).__name__}: {' '.join(str(e).split())[:300]}"
            ) from None
    if isinstance(spec, dict) and "_target_" in spec:
        return instantiate_spec(spec, key)
    raise ConfigError(key, f"expected a reward name, a dotted path or a {{_target_: ...}} object, got {spec!r:.80}")


def needed_columns(reward: Any) -> tuple[str, ...]:
    """Dataset columns a reward reads: declared by built-ins; for custom rewards, their named parameters
    beyond the ones the trainer provides."""
    if hasattr(reward, "needs_columns"):
        return tuple(reward.needs_columns)
    provided = {"completions", "prompts", "completion_ids", "trainer_state", "self"}
    try:
        params = inspect.signature(reward).parameters.values()
    except (TypeError, ValueError):
        return ()
    return tuple(
        p.name
        for p in params
        if p.name not in provided
        and p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    )


def resolve_all(cfg: Any) -> list[tuple[str, Callable]]:
    from omegaconf import DictConfig, OmegaConf

    out = []
    for i, spec in enumerate(cfg.reward_funcs):
        if isinstance(spec, DictConfig):
            spec = OmegaConf.to_container(spec, resolve=True)
        out.append(resolve(spec, i, cfg))
    names = [n for n, _ in out]
    # Rewards are logged by name, so two entries of the same function get numbered names.
    return [(f"{n}_{i}" if names.count(n) > 1 else n, r) for i, (n, r) in enumerate(out)]
