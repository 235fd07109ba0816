"""Turn Hydra/OmegaConf composition errors into one line: what is wrong, where, what to do."""

from __future__ import annotations

import dataclasses
import difflib

import yaml
from hydra.errors import MissingConfigException, OverrideParseException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from rlhf_lab.config.extras import missing_message, missing_plugin
from rlhf_lab.config.root import GROUPS


def _valid_keys(exc: OmegaConfBaseException) -> list[str]:
    object_type = getattr(exc, "object_type", None)
    if object_type is not None and dataclasses.is_dataclass(object_type):
        return [f.name for f in dataclasses.fields(object_type)]
    parent = getattr(exc, "parent_node", None)
    try:
        return [str(k) for k in parent.keys()]  # noqa: SIM118 - an OmegaConf node, iterated by keys() if parent is not None else []
    except Exception:
        return []


def _unknown_key(exc: ConfigKeyError | ConfigAttributeError) -> str:
    full_key = exc.full_key or str(exc.key)
    key = str(exc.key) if exc.key is not None else full_key.rsplit(".", 1)[-1]
    parent = full_key.rsplit(".", 1)[0] if "." in full_key else ""
    valid = _valid_keys(exc)
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean '{parent + '.' if parent else ''}{close[0]}'?)" if close else _elsewhere(key, parent)
    listing = f"; valid keys{' of ' + parent if parent else ''}: {', '.join(valid)}" if valid else ""
    return f"unknown key '{full_key}'{hint}{listing}"


def _elsewhere(key: str, parent: str) -> str:
    """A key that lives in another group (beta -> algorithm.beta), or an ms-swift/TRL name for one of ours."""
    from rlhf_lab.cli.swift.flags import pointer
    from rlhf_lab.config.introspect import groups_with_field

    groups = [g for g in groups_with_field(key) if g != parent]
    if len(groups) == 1:
        return f" (did you mean '{groups[0]}.{key}'?)"
    if groups:
        return f" (it is a key of {', '.join(groups)}: e.g. '{groups[0]}.{key}')"
    where = pointer(key)
    return f" (rlhf_lab's equivalent of ms-swift's --{key}: {where})" if where else ""


def _option_hint(group: str, option: str) -> str:
    """A hub id or a file given where a preset name goes (model=Qwen/Qwen3-8B)."""
    if not ("/" in option or "." in option):
        return ""
    if group == "model":
        return f"; a hub id or a local checkpoint is set with model=custom model.name_or_path={option}"
    if group == "dataset":
        return f"; a file, folder or hub id is read with dataset=custom dataset.path={option}"
    return ""


def explain(exc: BaseException) -> str:
    """One line for any composition failure."""
    if isinstance(exc, MissingConfigException):
        missing = exc.missing_cfg_file or ""
        group, _, option = missing.partition("/") if missing.partition("/")[0] in GROUPS else missing.rpartition("/")
        options = ", ".join(exc.options) if exc.options else "none found"
        extra = missing_plugin(group, option)
        if extra:  # a launcher or sweeper whose plugin is an extra (hydra/launcher=slurm, hparams_search=...)
            return f"config error: {missing_message(extra, f'{group}={option}')}"
        if group:
            return (
                f"config error: unknown option '{option}' for {group}{_option_hint(group, option)}; choose one of: "
                f"{options}"
            )
        return f"config error: {' '.join(str(exc).split())}"
    if isinstance(exc, OverrideParseException):
        text = " ".join(str(exc).split())
        # SOURCE#N (N rows of a source) holds a '#', which Hydra reads only inside quotes.
        hint = (
            (
                "; a value holding '#' must be quoted, e.g. 'dataset.path=\"data.jsonl#500\"' or "
                "'dataset.path=[\"a.jsonl#500\",b.parquet]'"
            )
            if "#" in text
            else ""
        )
        return f"config error: cannot parse the override: {text}{hint}"
    if isinstance(exc, yaml.YAMLError):
        mark = getattr(exc, "problem_mark", None)
        where = f"{mark.name}:{mark.line + 1}: " if mark else ""
        return f"config error: {where}invalid YAML ({getattr(exc, 'problem', None) or exc})"
    cause = exc if isinstance(exc, OmegaConfBaseException) else exc.__cause__
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)):
        return f"config error: {_unknown_key(cause)}"
    if isinstance(cause, ValidationError):
        first = str(cause).splitlines()[0]
        key = cause.full_key or ""
        return f"config error: {key}: {first}" if key else f"config error: {first}"
    if isinstance(cause, OmegaConfBaseException):
        key = getattr(cause, "full_key", None)
        first = str(cause).splitlines()[0]
        return f"config error: {key}: {first}" if key else f"config error: {first}"
    return f"config error: {' '.join(str(exc).split())}"
