"""Start the run's training processes.

One process: train here. More: the config was composed and validated once (in this process); its resolved form
is written to the run directory and torch.distributed's own launcher (torch.distributed.run) starts the workers
(rlhf_lab/runtime/worker.py), which read it back. The main worker leaves its result, every failing worker its error, in
<run dir>/.launch/, so this process can write one truthful summary.json.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from rlhf_lab.config.distributed import WHOLE_MODEL_BACKENDS
from rlhf_lab.config.run import Run
from rlhf_lab.config.secrets import ENV_VAR as SECRETS_ENV
from rlhf_lab.errors import Interrupted, UserError
from rlhf_lab.paths import write_text_atomic
from rlhf_lab.runtime.interrupts import STOP
from rlhf_lab.runtime.ranks import under_launcher

log = logging.getLogger("rlhf_lab")

LAUNCH_DIR = ".launch"
RESOLVED_FILE = "resolved.yaml"
RESULT_FILE = "result.json"
# How a rank says that another one went away (gloo's words, NCCL's): a consequence, never the cause.
LOST_PEER = re.compile(r"(closed|reset) by peer|remote (worker|process|rank)", re.IGNORECASE)


class WorkerUserError(UserError):
    """A worker stopped on bad input (the same check fails on every rank): its one line, with the rank."""

    def __init__(self, line: str, rank: int):
        self.line, self.rank = line, rank
        super().__init__(line)

    def one_line(self) -> str:
        return self.line


class WorkerFailed(RuntimeError):
    """A worker crashed: which rank, its error, and where its traceback is."""

    def __init__(self, message: str, rank: int | None, traceback_path: str | None):
        self.rank, self.traceback_path = rank, traceback_path
        super().__init__(message)


def launch(run: Run) -> dict:
    if under_launcher():
        from rlhf_lab.training.pipeline import train

        return train(run)
    check_devices(run)
    # DeepSpeed and FSDP need a process group even for one process (ZeRO-3 offload on one GPU): a launcher starts it.
    if run.world_size == 1 and run.distributed.backend in WHOLE_MODEL_BACKENDS:
        from rlhf_lab.training.pipeline import train

        return train(run)
    return spawn_workers(run)


def write_launch_spec(run: Run) -> Path:
    folder = run.run_dir / LAUNCH_DIR
    shutil.rmtree(folder, ignore_errors=True)  # results of an earlier attempt in this directory
    folder.mkdir(parents=True)
    spec = {
        "config": run.resolved,
        "choices": run.choices,
        "overrides": list(run.overrides),
        "sweep_dir": str(run.sweep_dir) if run.sweep_dir else None,
    }
    write_text_atomic(folder / RESOLVED_FILE, yaml.safe_dump(spec, sort_keys=False))
    return folder


def node_placement(run: Run) -> tuple[int, str]:
    """(node_rank, master_addr): from the config, or, in a multi-node SLURM job started by submitit (one task per
    node), from the job's own node index and its first host."""
    d = run.distributed
    if d.nnodes > 1 and os.environ.get("SUBMITIT_EXECUTOR") == "slurm":
        import submitit

        env = submitit.JobEnvironment()
        return env.node, env.hostnames[0]
    return d.node_rank, d.master_addr


def torchrun_command(run: Run) -> list[str]:
    d = run.distributed
    node_rank, master_addr = node_placement(run)
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={d.nproc_per_node}",
        f"--nnodes={d.nnodes}",
        f"--node_rank={node_rank}",
        f"--master_addr={master_addr}",
        f"--master_port={d.master_port}",
        "-m",
        "rlhf_lab.runtime.worker",
        str(run.run_dir),
    ]


def check_devices(run: Run) -> None:
    """On GPUs each worker takes one device: more workers than devices would share them or fail late, fewer leave
    some idle (said, not refused)."""
    import torch

    from rlhf_lab.errors import ConfigError

    gpus = torch.cuda.device_count()
    if gpus and run.distributed.nproc_per_node > gpus:
        raise ConfigError(
            "distributed.nproc_per_node",
            f"is {run.distributed.nproc_per_node} but this node has {gpus} GPUs; set it to at most {gpus}",
        )
    if gpus > run.distributed.nproc_per_node:
        # As with torchrun, one process per GPU: the others stay idle unless asked for.
        log.warning(
            "%d GPUs are visible but the run starts %d process(es) per node; %d stay idle (set "
            "distributed.nproc_per_node=%d, or NPROC_PER_NODE, to use them all)",
            gpus,
            run.distributed.nproc_per_node,
            gpus - run.distributed.nproc_per_node,
            gpus,
        )


def spawn_workers(run: Run) -> dict:
    folder = write_launch_spec(run)
    # Its own session: a Ctrl-C in the terminal reaches this process only, which passes it on once (torchrun
    # forwards it to the workers, which stop at a step boundary with a checkpoint).
    # The config file holds the masked secrets; the workers get the real values through their environment.
    env = {**os.environ, SECRETS_ENV: json.dumps(run.secrets)} if run.secrets else None
    child = subprocess.Popen(torchrun_command(run), start_new_session=True, env=env)
    STOP.child = child
    try:
        code = child.wait()
    finally:
        STOP.child = None
    node_rank, _ = node_placement(run)
    per_node = run.distributed.nproc_per_node
    return workers_outcome(folder, code, range(node_rank * per_node, (node_rank + 1) * per_node))


def workers_outcome(folder: Path, code: int, local_ranks: range) -> dict:
    """The run's result from what the workers left in `folder` and the launcher's exit code, or the exception that
    tells how it ended. `local_ranks`: the ranks this node's launcher started. A worker's stop was the user's only
    if this process was signalled too (STOP)."""
    result = folder / RESULT_FILE
    if code == 0 and result.exists():
        return json.loads(result.read_text())
    reports = sorted(
        (json.loads(p.read_text()) | {"at": p.stat().st_mtime} for p in folder.glob("error-rank*.json")),
        key=lambda r: r["at"],
    )
    stopped = [r for r in reports if r.get("interrupted")]
    errors = [r for r in reports if not r.get("interrupted")]
    silent = sorted(set(local_ranks) - {r["rank"] for r in reports})
    if not STOP.received:
        # Nobody asked this run to stop: a rank's stop was torchrun's, after another rank failed. The cause is the
        # earliest error that is not a lost peer; else a rank that died without a word (a kill, a native crash),
        # which the lost peers followed from. (No report at all: the workers may never have started.)
        causes = [r for r in errors if not LOST_PEER.search(r["error"])]
        if causes:
            raise _failure(causes[0])
        if silent and reports:
            after = f"; rank {errors[0]['rank']} then reported: {errors[0]['error']}" if errors else ""
            raise WorkerFailed(
                f"rank {silent[0]} ended without a report (killed, or crashed in native code: its output is above)"
                f"{after}",
                silent[0],
                errors[0]["traceback"] if errors else None,
            )
        if errors:
            raise _failure(errors[0])
    if stopped:
        info = min(stopped, key=lambda r: r["rank"])["interrupted"]
        raise Interrupted(info["signal"], info["checkpoint"], info["exit_code"])
    if STOP.received:
        raise Interrupted(STOP.name, None, 128 + STOP.received)
    raise WorkerFailed(f"the worker processes exited with code {code} without reporting an error", None, None)


def _failure(report: dict) -> Exception:
    """A worker's error report as the exception the job records: bad input (exit 2) or a crash (exit 1)."""
    if report["user_error"]:
        return WorkerUserError(report["error"], report["rank"])
    return WorkerFailed(f"rank {report['rank']}: {report['error']}", report["rank"], report["traceback"])
