"""algorithm.tools and algorithm.environment: the functions (or an environment's methods) a GRPO policy may call
while it answers, loaded and checked before any model loads.

A tool is a plain function with a type hint on every argument and a Google-style docstring (a summary line and an
`Args:` entry per argument): the model sees the name, the summary and the arguments rendered from them, as
transformers renders tools for chat templates. An environment is a class; each answer gets its own instance, whose
`reset(**row)` is called with the answer's dataset row before generation (a string it returns is added to the
prompt), whose public methods are its tools, and whose optional `get_reward()` scores the finished answer.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from typing import Any

from rlhf_lab.errors import ConfigError
from rlhf_lab.rewards.custom import import_dotted, instantiate_spec

_ARGS = re.compile(r"^\s*Args:\s*$", re.MULTILINE)


def check_tool(tool: Any, key: str) -> None:
    """What transformers needs to render a tool for the model, checked here so a bad tool is one line."""
    name = getattr(tool, "__name__", repr(tool))
    if not callable(tool) or not hasattr(tool, "__name__"):
        raise ConfigError(key, f"{tool!r:.80} is not a function; a tool is a function (or an environment's method)")
    doc = inspect.getdoc(tool)
    if not doc:
        raise ConfigError(key, f"tool {name!r} has no docstring; the model reads what a tool does from it")
    params = [
        p
        for p in inspect.signature(tool).parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    for p in params:
        if p.annotation is inspect.Parameter.empty:
            raise ConfigError(key, f"tool {name!r}: argument {p.name!r} needs a type hint (e.g. {p.name}: int)")
    if params:
        args = _ARGS.split(doc, maxsplit=1)
        described = args[1] if len(args) == 2 else ""
        for p in params:
            if not re.search(rf"^\s*{re.escape(p.name)}\s*(\(.*\))?\s*:", described, re.MULTILINE):
                raise ConfigError(
                    key,
                    f"tool {name!r}: its docstring needs an 'Args:' section describing {p.name!r} "
                    f"(a line '    {p.name}: what it is')",
                )


def resolve_tools(specs: list) -> list[Callable]:
    from omegaconf import DictConfig, OmegaConf

    tools = []
    for i, spec in enumerate(specs):
        key = f"algorithm.tools[{i}]"
        if isinstance(spec, DictConfig):
            spec = OmegaConf.to_container(spec, resolve=True)
        if isinstance(spec, str):
            tool = import_dotted(spec, key, what="tool")
        elif isinstance(spec, dict) and "_target_" in spec:
            tool = instantiate_spec(spec, key)
        else:
            raise ConfigError(
                key, f"expected a dotted path (my_pkg.tools.fn) or a {{_target_: ...}} object, got {spec!r:.80}"
            )
        check_tool(tool, key)
        tools.append(tool)
    names = [t.__name__ for t in tools]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError("algorithm.tools", f"two tools are named {twice[0]!r}; the model calls tools by name")
    return tools


def environment_tools(cls: type) -> list[str]:
    """The names of an environment class's tools: its public methods other than reset and get_reward."""
    return [
        name
        for name, _ in inspect.getmembers(cls, predicate=inspect.isfunction)
        if not name.startswith("_") and name not in ("reset", "get_reward")
    ]


def resolve_environment(spec: Any) -> tuple[type, Callable[[], Any]]:
    """(the environment class, a factory making one instance), from a dotted path or a {_target_: ...} object."""
    from omegaconf import DictConfig, OmegaConf

    key = "algorithm.environment"
    if isinstance(spec, DictConfig):
        spec = OmegaConf.to_container(spec, resolve=True)
    if isinstance(spec, str):
        cls, factory = import_dotted(spec, key, what="environment"), None
    elif isinstance(spec, dict) and "_target_" in spec:
        cls = import_dotted(spec["_target_"], key, what="environment")
        factory = functools.partial(instantiate_spec, spec, key)
    else:
        raise ConfigError(key, f"expected a class's dotted path or a {{_target_: ...}} object, got {spec!r:.80}")
    if not inspect.isclass(cls):
        raise ConfigError(key, f"{cls!r:.80} is not a class; an environment is a class whose methods are tools")
    if not callable(getattr(cls, "reset", None)):
        raise ConfigError(
            key, f"environment {cls.__name__!r} needs a reset(self, **row) method (called before each answer)"
        )
    names = environment_tools(cls)
    if not names:
        raise ConfigError(key, f"environment {cls.__name__!r} has no public method for the model to call as a tool")
    for name in names:
        check_tool(getattr(cls, name), f"{key} ({cls.__name__}.{name})")
    return cls, factory or cls


def owns_reward(spec: Any) -> bool:
    cls, _ = resolve_environment(spec)
    return callable(getattr(cls, "get_reward", None))
