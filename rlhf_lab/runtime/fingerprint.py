"""A run directory belongs to one run: the settings that decide what is trained, stored with the run.

Written when training begins (after the data checks), compared when the directory is used again, so that
train.resume=auto continues only the same run and never another algorithm's checkpoint or metrics. Logging,
output, evaluation and run-length settings are left out: changing them (or raising train.max_steps to train
further) continues the same run. No torch here: it is checked with the config, before a model loads.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from rlhf_lab.errors import ConfigError
from rlhf_lab.paths import write_json_atomic

FILE = "run_fingerprint.json"
# The config groups whose settings decide the trained weights (logger and objective do not).
GROUPS = ("algorithm", "model", "tuner", "dataset", "distributed", "train")
# Keys of those groups that do not: how often and where the run records itself, how it is evaluated, how long it runs,
# where the processes of a multi-node run meet (a requeued SLURM job gets other hosts), and where and how a reward
# server is reached (a restarted server may come back on another host or port).
NOT_TRAINING = frozenset(
    {
        "train.resume",
        "train.trust_checkpoint",
        "train.save_steps",
        "train.save_total_limit",
        "train.logging_steps",
        "train.eval",
        "train.per_device_eval_batch_size",
        "train.dataset_num_proc",
        "train.max_steps",
        "train.num_train_epochs",
        "distributed.node_rank",
        "distributed.master_addr",
        "distributed.master_port",
        "algorithm.reward_server",
        "algorithm.reward_server_timeout",
        "algorithm.reward_server_retries",
        "algorithm.reward_server_concurrency",
        "algorithm.reward_server_batch_size",
    }
)
# Files Hydra writes into the run directory before a job starts (they belong to whichever command ran last), and the
# lock a live run holds (runtime/claim.py).
HYDRA_FILES = (".hydra", ".rlhf_lab.lock")
# What a run writes into its directory; anything else there (the user's data, notes) is not a run's and is left alone.
RUN_OUTPUTS = frozenset(
    {
        FILE,
        "summary.json",
        "metrics.jsonl",
        "dropped_rows.jsonl",
        "checkpoints",
        "adapter",
        "model",
        "export",
        ".export.partial",
        "eval.json",
        "report.md",
        "report_curves.png",
        "tensorboard",
        "wandb",
        ".launch",
        ".adapter.partial",
        ".model.partial",
    }
)


def settings(resolved: dict) -> dict[str, Any]:
    """The training settings of a resolved config, as dotted key -> value."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        elif prefix not in NOT_TRAINING:
            flat[prefix] = value

    for group in GROUPS:
        walk(group, resolved[group])
    return flat


def write(run_dir: Path, resolved: dict) -> str:
    """Record the run's settings; returns the run's identity, made the first time and kept when the run continues."""
    run_id = run_id_of(run_dir) or uuid.uuid4().hex
    write_json_atomic(run_dir / FILE, {"settings": settings(resolved), "run_id": run_id, "written_at": time.time()})
    return run_id


def run_id_of(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / FILE).read_text()).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None


def read(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError("hydra.run.dir", f"{path} is unreadable; move it away, or choose another directory") from None


# The key that names a group's option: when it differs, the option's other settings are not compared one by one.
_OPTION_KEYS = ("algorithm.name", "tuner.name", "distributed.backend")


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """'key: old -> new' for each training setting that differs."""
    out = []
    switched = [k.split(".")[0] for k in _OPTION_KEYS if old.get(k) != new.get(k)]
    for key in sorted(set(old) | set(new)):
        group = key.split(".")[0]
        if group in switched and key not in _OPTION_KEYS:
            continue
        a, b = old.get(key, "(unset)"), new.get(key, "(unset)")
        if a != b:
            out.append(f"{key}: {_short(a)} -> {_short(b)}")
    return out


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


def holds_run(run_dir: Path) -> bool:
    """Whether an earlier run left its record here (any file or folder a run writes, beyond Hydra's)."""
    if not run_dir.is_dir():
        return False
    return any(_of_a_run(p) for p in run_dir.iterdir())


def only_hydra_files(run_dir: Path) -> bool:
    """Whether the directory holds nothing but what Hydra wrote for this command (it was made for it)."""
    return run_dir.is_dir() and all(p.name in HYDRA_FILES or p.suffix == ".log" for p in run_dir.iterdir())


def check_same_run(run_dir: Path, resolved: dict) -> None:
    """train.resume=auto in a directory that holds a run: it must be this run (the same training settings)."""
    if not holds_run(run_dir):
        return
    ways_out = (
        "choose another directory (hydra.run.dir=...), start over here with train.resume=never (the earlier "
        "run's files are kept under before-<time>/), or use the earlier run's settings"
    )
    old = read(run_dir)
    if old is None:
        raise ConfigError(
            "hydra.run.dir",
            f"{run_dir} holds files of another run whose settings are not recorded (no {FILE}); {ways_out}",
        )
    changed = differences(old, settings(resolved))
    if changed:
        shown = "; ".join(changed[:6]) + (f"; and {len(changed) - 6} more" if len(changed) > 6 else "")
        raise ConfigError(
            "hydra.run.dir",
            f"{run_dir} holds a run with other training settings ({shown}), which "
            f"train.resume=auto would continue; {ways_out}",
        )


def set_aside(run_dir: Path) -> Path | None:
    """train.resume=never where an earlier run left its files: keep them, under before-<time>/, rather than mix or
    overwrite them. Hydra's files (.hydra/, the log) stay: they already describe the new command."""
    if not holds_run(run_dir):
        return None
    aside = run_dir / f"before-{time.strftime('%Y%m%d-%H%M%S')}"
    aside.mkdir()
    for entry in list(run_dir.iterdir()):
        if entry != aside and _of_a_run(entry):
            os.replace(entry, aside / entry.name)
    return aside


def _of_a_run(entry: Path) -> bool:
    """A file or folder a run wrote (an earlier run already set aside under before-<time>/ is not one)."""
    return (
        entry.name in RUN_OUTPUTS
        or (entry.name.startswith("traceback") and entry.suffix == ".txt")
        # an older model folder renamed aside while a new one was published (paths.publish_dir)
        or entry.name.startswith((".adapter.replaced-", ".model.replaced-", ".export.replaced-"))
    )
