"""Verbs that work on trained runs (python -m rlhf_lab export run=...): their key=value arguments are read into the
verb's typed options, as training overrides are, so a typo or a bad value is one line before anything loads."""

from __future__ import annotations

import dataclasses
import difflib

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlhf_lab.algorithms.registry import load_target
from rlhf_lab.config.fields import field_help
from rlhf_lab.errors import ConfigError

# verb -> (its options, "module:function" that does it, what it does). The functions import torch; this table does not.
# eval has no options of its own: it takes a run's overrides (algorithm=..., dataset=...), which Hydra composes.
VERBS = {
    "export": (
        "rlhf_lab.config.verbs:ExportConfig",
        "rlhf_lab.export.merge:export",
        "a run's model as one transformers checkpoint (LoRA merged in)",
    ),
    "infer": (
        "rlhf_lab.config.verbs:InferConfig",
        "rlhf_lab.inference.infer:infer",
        "a model's answers to every prompt of a file (JSON lines), or a chat in the terminal",
    ),
    "eval": (
        None,
        "rlhf_lab.inference.evaluate:evaluate_command",
        "the held-out evaluation of a run (before and after) or of any model, as training scores it",
    ),
    "serve-reward": (
        "rlhf_lab.config.verbs:ServeRewardConfig",
        "rlhf_lab.serving.reward_model:serve_reward",
        "a trained reward model served over HTTP for algorithm.reward_server (GRPO, PPO on another machine)",
    ),
    "plan": (
        None,
        "rlhf_lab.planning.plan:plan_command",
        "the memory per device and time per step of a run's settings, and whether it fits an accelerator",
    ),
    "compare": (
        None,
        "rlhf_lab.tracking.compare:compare_command",
        "runs side by side: the settings that differ, their results, their training curves",
    ),
}


def parse(verb: str, args: list[str]):
    """The verb's options from key=value arguments."""
    schema = load_target(VERBS[verb][0])
    fields = {f.name: f for f in dataclasses.fields(schema)}
    values = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise ConfigError(None, f"{verb}: {arg!r} is not key=value; {verb}'s keys: {', '.join(fields)}")
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(key, f"not a key of {verb}{hint}; its keys: {', '.join(fields)}")
        values[key] = value
    missing = [n for n, f in fields.items() if f.default is MISSING and n not in values]
    if missing:
        raise ConfigError(missing[0], f"is required: {field_help(schema, missing[0])} ({verb} {missing[0]}=...)")
    try:
        node = OmegaConf.merge(
            OmegaConf.structured(schema), OmegaConf.from_dotlist([f"{k}={v}" for k, v in values.items()])
        )
        return OmegaConf.to_object(node)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or None
        raise ConfigError(key, " ".join(str(e).splitlines()[0].split())) from None


def usage(verb: str) -> str:
    schema_path, _, what = VERBS[verb]
    schema = load_target(schema_path)
    lines = [f"python -m rlhf_lab {verb} key=value ...: {what}", ""]
    for f in dataclasses.fields(schema):
        default = "(required)" if f.default is MISSING else repr(f.default)
        lines.append(f"  {f.name:<12} {default:<12} {field_help(schema, f.name)}")
    return "\n".join(lines)


def run(verb: str, args: list[str]) -> int:
    schema, target, _ = VERBS[verb]
    if schema is None:  # the verb reads its own arguments
        print(load_target(target)(args))
        return 0
    if "--help" in args or "-h" in args:
        print(usage(verb))
        return 0
    options = parse(verb, args)
    result = load_target(VERBS[verb][1])(options)
    if result is not None:
        print(result)
    return 0


def main_for(args: list[str]) -> int | None:
    """Run the verb args name, or None when args are a training command."""
    if args[:1] and args[0] in VERBS:
        return run(args[0], args[1:])
    return None
