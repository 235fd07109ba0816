"""Keys the config may hold, checked after composition: a key added with '+' or '++' must be a setting, and the
field that names a group's option cannot be set on its own (that would keep the other option's settings)."""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path

from omegaconf import DictConfig

from rlhf_lab.config.root import RootConfig
from rlhf_lab.config.store import SCHEMA_FIELD
from rlhf_lab.errors import ConfigError
from rlhf_lab.paths import CONF_DIR


def check_known_keys(cfg: DictConfig, parts: dict) -> None:
    """Every key of the composed config is a setting of its schema (Hydra lets '+key=' add any key to a group whose
    schema its option chooses, and such a key would be ignored)."""
    top = [f.name for f in dataclasses.fields(RootConfig)]
    for key in cfg:
        if key not in top:
            raise ConfigError(None, _unknown(str(key), "", top))
    for group, part in parts.items():
        valid = [f.name for f in dataclasses.fields(part)]
        for key in cfg[group]:
            if key not in valid:
                raise ConfigError(None, _unknown(str(key), group, valid))


def _unknown(key: str, group: str, valid: list[str]) -> str:
    full = f"{group}.{key}" if group else key
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean '{group + '.' if group else ''}{close[0]}'?)" if close else ""
    where = f" of {group}" if group else ""
    return f"unknown key '{full}'{hint}; '+' adds no setting: valid keys{where}: {', '.join(valid)}"


def check_selectors(overrides: tuple[str, ...]) -> None:
    """algorithm.name=kto, tuner.name=full, distributed.backend=ddp, logger.backend=wandb: the option is chosen by
    the group (algorithm=kto), which also brings its settings."""
    for override in overrides:
        key, sep, value = str(override).partition("=")
        group, _, field = key.lstrip("+~").partition(".")
        if sep and SCHEMA_FIELD.get(group) == field:
            options = sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))
            choose = f"{group}={value}" if value in options else f"{group}=<one of {', '.join(options)}>"
            raise ConfigError(
                f"{group}.{field}",
                f"is set by the {group} option, not on its own (it would keep the current option's settings); "
                f"choose the option instead: {choose}",
            )
