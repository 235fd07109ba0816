"""Model presets (conf/model/<name>.yaml) named where a path is expected, e.g. a GKD teacher."""

from __future__ import annotations

from pathlib import Path

from rlhf_lab.paths import CONF_DIR


def model_preset_path(name: str) -> str | None:
    """The name_or_path of the model preset called `name`, or None when no such preset exists."""
    if "/" in name or name.startswith(".") or not name:
        return None
    preset = Path(CONF_DIR) / "model" / f"{name}.yaml"
    if not preset.is_file():
        return None
    import yaml

    return yaml.safe_load(preset.read_text())["model"]["name_or_path"]


def preset_named_for(name_or_path: str) -> str | None:
    """The model preset whose name_or_path is this hub id or path, if one is."""
    import yaml

    for name in preset_names():
        if (
            yaml.safe_load((Path(CONF_DIR) / "model" / f"{name}.yaml").read_text())["model"]["name_or_path"]
            == name_or_path
        ):
            return name
    return None


def preset_names() -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / "model").glob("*.yaml") if p.stem != "custom")
