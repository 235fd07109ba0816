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

    return yaml.safe_load(preset.read_text())["name_or_path"]
