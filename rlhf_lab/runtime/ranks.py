"""Which process this is, from the environment torch.distributed's launchers set (torchrun, accelerate launch,
the deepspeed launcher, SLURM through submitit). Only the main process writes the run's outputs."""

from __future__ import annotations

import os
import sys


def rank() -> int:
    # RANK: a torch.distributed worker; SLURM_PROCID: a task of a multi-node SLURM job (one per node).
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    return rank() == 0


def under_launcher() -> bool:
    """True in a worker that a distributed launcher started (it trains; it does not start more processes)."""
    return "LOCAL_RANK" in os.environ and world_size() > 1


def _joined_group():
    """torch.distributed, where this process has joined a process group; else None (without importing torch:
    a group exists only once torch.distributed is loaded)."""
    if "torch.distributed" not in sys.modules:
        return None
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def barrier() -> None:
    dist = _joined_group()
    if dist is not None:
        dist.barrier()


def leave_group() -> None:
    """Close this process's process group while the interpreter is whole. Left to interpreter shutdown, gloo's
    threads can still hold tensors whose release needs the GIL, and a process that finished its work aborts
    (SIGABRT), which makes the launcher stop the other ranks mid-way."""
    dist = _joined_group()
    if dist is not None:
        dist.destroy_process_group()


def agreed_start() -> tuple[float, str]:
    """The run's start time and a short random name part, the same in every process a launcher started (rank 0's,
    broadcast), so that they all compose the same run directory, and two runs started in the same second do not.
    Joining the process group here is what the trainer would do anyway."""
    mine = local_start()
    if not under_launcher():
        return mine
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    shared = [mine]
    dist.broadcast_object_list(shared, src=0)
    return shared[0]


def local_start() -> tuple[float, str]:
    """This process's start time and random name part (what agreed_start shares from rank 0)."""
    import secrets
    import time

    return time.time(), secrets.token_hex(3)
