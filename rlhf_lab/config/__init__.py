"""Typed schema of every config group option: the one place where defaults live.

Each option YAML in conf/ names its schema in its defaults list (`/schema/<group>/<name>`) and only
overrides values. Importing this package registers the schemas in Hydra's ConfigStore; it imports
nothing heavy.
"""

from rlhf_lab.config.store import register_schemas

__all__ = ["register_schemas"]
