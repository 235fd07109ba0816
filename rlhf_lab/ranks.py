"""Which process this is, from the environment torch.distributed's launchers set (torchrun, accelerate launch,
the deepspeed launcher, SLURM through submitit). Only the main process writes the run's outputs."""

from __future__ import annotations

import os


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    return rank() == 0


def under_launcher() -> bool:
    """True in a worker that a distributed launcher started (it trains; it does not start more processes)."""
    return "LOCAL_RANK" in os.environ and world_size() > 1


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
