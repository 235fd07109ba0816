"""NPROC_PER_NODE, NNODES, NODE_RANK, MASTER_ADDR and MASTER_PORT, as ms-swift and torchrun users set them.

They fill the matching distributed.* keys the command line leaves unset; one that disagrees with the command line is
a config error. More than one process per node with no distributed option chosen picks distributed=ddp, as
`swift rlhf` does. Inside processes a launcher started, the launcher's own variables are not ours to read.
"""

from __future__ import annotations

import os

from rlhf_lab.errors import ConfigError

ENV_KEYS = {
    "NPROC_PER_NODE": "distributed.nproc_per_node",
    "NNODES": "distributed.nnodes",
    "NODE_RANK": "distributed.node_rank",
    "MASTER_ADDR": "distributed.master_addr",
    "MASTER_PORT": "distributed.master_port",
}
_NUMERIC = {"NPROC_PER_NODE", "NNODES", "NODE_RANK", "MASTER_PORT"}


def _given(overrides: list[str]) -> dict[str, str]:
    """key -> value of the command line's overrides (a sweep's value list kept as written)."""
    out = {}
    for override in overrides:
        key, sep, value = override.partition("=")
        if sep:
            out[key.lstrip("+~")] = value
    return out


def environment_overrides(overrides: list[str], environ: dict[str, str] | None = None) -> list[str]:
    """The overrides the environment adds to the command line's."""
    from rlhf_lab.runtime.ranks import under_launcher

    env = os.environ if environ is None else environ
    if under_launcher():
        return []
    given = _given(overrides)
    added = []
    for var, key in ENV_KEYS.items():
        value = env.get(var, "").strip()
        if not value:
            continue
        if var in _NUMERIC and not value.isdigit():
            raise ConfigError(key, f"{var}={value} in the environment is not a whole number; fix or unset it")
        if key in given:
            if given[key] != value:
                raise ConfigError(
                    key,
                    f"is {given[key]} on the command line but {var}={value} in the environment; "
                    f"make them agree, or unset {var}",
                )
            continue
        added.append(f"{key}={value}")
    if int(env.get("NPROC_PER_NODE", "1").strip() or 1) * int(env.get("NNODES", "1").strip() or 1) > 1:
        chosen = given.get("distributed")
        if chosen is None:
            added.insert(0, "distributed=ddp")
        elif chosen == "single":
            raise ConfigError(
                "distributed",
                "is single (one process) but NPROC_PER_NODE/NNODES in the environment ask "
                "for more; choose ddp, zero2, zero3 or fsdp, or unset them",
            )
    return added
