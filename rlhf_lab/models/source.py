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
    try:
        found = path.exists()
    except OSError as e:  # e.g. a name longer than the filesystem allows
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise ConfigError(key, f"{shown} cannot be looked up ({e.strerror}, {len(value)} characters)") from None
    if found:
        if path.is_file() and path.suffix == ".gguf":
            return ModelSource("gguf", str(path.absolute()))
        if not (path / "config.json").is_file():
            raise ConfigError(key, f"{path} has no config.json; point it at a saved transformers checkpoint")
        return ModelSource("local", str(path.absolute()))
    if value.startswith(("/", ".", "~")) or not _HUB_ID.match(value):
        raise ConfigError(key, f"{value} does not exist; give a local checkpoint dir or a hub id like Qwen/Qwen3-8B")
    first = value.split("/", 1)[0]  # a hub id has one "/"
    if Path(first).exists():
        # rm_demo/model with rm_demo/ here is a folder the user means (a run not finished yet), never a hub id to
        # download.
        raise ConfigError(
            key,
            f"{value} does not exist, and {first} exists here, so it names a local path, not a hub id; give the "
            f"directory of a saved checkpoint (train it first), or run from a directory without {first} to use the "
            "hub model",
        )
    return ModelSource("hub", value)


def check_revision(source: ModelSource, revision: str | None, key: str) -> None:
    """A revision pins a hub model; on any other model it would silently do nothing."""
    if revision is None or source.kind == "hub":
        return
    what = {
        "builtin": f"{BUILTIN_SCHEME}{source.location} is built here, not downloaded",
        "gguf": f"{source.location} is a GGUF file, read as it is",
        "local": f"{source.location} is a local checkpoint, read as it is",
    }[source.kind]
    raise ConfigError(key, f"{revision!r} would do nothing: {what}; a revision pins a hub model, so leave it unset")
