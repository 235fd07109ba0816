"""Which settings each group option has, read from the schemas and the option files without composing a config
(for hints on unknown keys and for translating other tools' flags)."""

from __future__ import annotations

import dataclasses
import re
from functools import cache
from pathlib import Path

from rlhf_lab.paths import CONF_DIR

_SCHEMA_LINE = re.compile(r"^\s*-\s*/schema/(\w+)/(\w+)@")


@cache
def option_schema(group: str, option: str):
    """The schema dataclass conf/<group>/<option>.yaml builds on (None when there is no such option)."""
    from rlhf_lab.config.store import schemas

    path = Path(CONF_DIR) / group / f"{option}.yaml"
    if not path.is_file():
        return None
    for line in path.read_text().splitlines():
        match = _SCHEMA_LINE.match(line)
        if match and match.group(1) == group:
            return schemas()[group][match.group(2)]
    return None


def option_fields(group: str, option: str) -> set[str]:
    schema = option_schema(group, option)
    return {f.name for f in dataclasses.fields(schema)} if schema else set()


@cache
def groups_with_field(name: str) -> tuple[str, ...]:
    """The groups (and train) that have a setting called `name` in any of their options."""
    from rlhf_lab.config.root import GROUPS
    from rlhf_lab.config.store import schemas
    from rlhf_lab.config.train import TrainConfig

    found = [g for g in GROUPS if any(name in {f.name for f in dataclasses.fields(s)} for s in schemas()[g].values())]
    if name in {f.name for f in dataclasses.fields(TrainConfig)}:
        found.append("train")
    return tuple(found)
