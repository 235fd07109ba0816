"""Settings checked against a local checkpoint's weight names before the model loads: read from the safetensors
headers (an 8-byte length, then JSON), so nothing is loaded and nothing heavy is imported."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from rlhf_lab.errors import ConfigError


def weight_names(folder: Path) -> list[str]:
    names: list[str] = []
    for file in sorted(folder.glob("*.safetensors")):
        with open(file, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
        names += [k for k in header if k != "__metadata__"]
    return names


def check_target_modules(targets, folder: Path, model: str) -> None:
    """A list of tuner.target_modules must each name a module of the model (peft matches a name against the end of
    a module's path); otherwise peft fails once the model has loaded, or, when some names match, silently gives the
    others no adapter. all-linear and regular expressions (a string) are peft's to match."""
    if isinstance(targets, str) or not folder.is_dir():
        return
    names = weight_names(folder)
    if not names:
        return
    modules = {n.rsplit(".", 1)[0] for n in names if n.endswith(".weight")}
    parts = {m.rsplit(".", 1)[-1] for m in modules}
    missing = [t for t in targets if not any(m == t or m.endswith("." + t) for m in modules)]
    if missing:
        shown = ", ".join(sorted(p for p in parts if not p.isdigit())[:20])
        raise ConfigError(
            "tuner.target_modules",
            f"{', '.join(missing)} names no module of {model} (its modules with weights end in: {shown}); use "
            "those names, or all-linear",
        )
