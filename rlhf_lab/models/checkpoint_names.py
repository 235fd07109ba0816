"""Settings checked against a local checkpoint's weight names before the model loads: read from the safetensors
headers, so no weight is loaded."""

from __future__ import annotations

from pathlib import Path

from rlhf_lab.errors import ConfigError


def weight_names(folder: Path) -> list[str]:
    from safetensors import safe_open

    names: list[str] = []
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(file, framework="numpy") as f:  # reads the header only
            names += list(f.keys())
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
