"""Where a model's weights come from, decided from model.name_or_path without importing torch."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rlhf_lab.errors import ConfigError
from rlhf_lab.paths import PKG_SCHEME, resolve_pkg_path

BUILTIN_SCHEME = "builtin:"
BUILTIN_MODELS = ("tiny-llama", "tiny-vl")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelSource:
    kind: str  # hub | local | gguf | builtin
    location: str  # hub id, absolute dir or file, or builtin name


def resolve_source(name_or_path: str, key: str = "model.name_or_path") -> ModelSource:
    """Check that the model can be found (cheaply) and say where it comes from."""
    value = name_or_path
    if value.startswith(BUILTIN_SCHEME):
        name = value[len(BUILTIN_SCHEME) :]
        if name not in BUILTIN_MODELS:
            raise ConfigError(key, f"unknown builtin model {name!r}; choose one of: {', '.join(BUILTIN_MODELS)}")
        return ModelSource("builtin", name)
    if value.startswith(PKG_SCHEME):
        path = resolve_pkg_path(value)
        if path is None:
            package = value[len(PKG_SCHEME) :].split("/")[0]
            raise ConfigError(
                key, f"package {package!r} is not installed; run scripts/setup.sh (it installs it with --no-deps)"
            )
        if not path.is_file():
            raise ConfigError(key, f"{path} does not exist inside the installed package")
        return ModelSource("gguf", str(path))
    path = Path(value).expanduser()
    if path.exists():
        if path.is_file() and path.suffix == ".gguf":
            return ModelSource("gguf", str(path.absolute()))
        if not (path / "config.json").is_file():
            raise ConfigError(key, f"{path} has no config.json; point it at a saved transformers checkpoint")
        return ModelSource("local", str(path.absolute()))
    if value.startswith(("/", ".", "~")) or not _HUB_ID.match(value):
        raise ConfigError(key, f"{value} does not exist; give a local checkpoint dir or a hub id like Qwen/Qwen3-8B")
    return ModelSource("hub", value)
