"""Schema fields that carry a one-line description, which `python -m rlhf_lab --help` prints beside each key."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

HELP = "help"


def doc(default: Any, help: str) -> Any:
    """A field with this default and description."""
    return dataclasses.field(default=default, metadata={HELP: help})


def doc_factory(factory: Callable[[], Any], help: str) -> Any:
    """A field whose default is built by factory (lists, dicts, nested schemas), with this description."""
    return dataclasses.field(default_factory=factory, metadata={HELP: help})


def field_help(schema: type, name: str) -> str | None:
    """The description of a schema's field; a subclass that only changes a default keeps its parent's."""
    for cls in schema.__mro__:
        found = getattr(cls, "__dataclass_fields__", {}).get(name)
        if found is not None and found.metadata.get(HELP):
            return found.metadata[HELP]
    return None
