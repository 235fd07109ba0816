"""Checkpoints that are either complete or not there.

Each checkpoint is written under <run dir>/checkpoints/.staging/, given a manifest (every file and its size) as its
last file, and renamed to checkpoints/checkpoint-<step> only then. Resuming takes the newest directory whose manifest
matches its files; anything else (a staging leftover of a killed run, a truncated or hand-edited checkpoint) is
skipped and reported. No torch here: the resume point is found while the config is checked, before a model loads.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from rlhf_lab.errors import OutputError
from rlhf_lab.paths import publish_dir, write_json_atomic
from rlhf_lab.training import checkpoint_identity as identity

log = logging.getLogger("rlhf_lab")

CHECKPOINTS = "checkpoints"
STAGING = ".staging"
PREFIX = "checkpoint-"
MANIFEST = "rlhf_lab_checkpoint.json"
# The algorithm's own state beside the trainer's (GRPO's sampling counters, PPO's prompt stream).
LAB_STATE = "rlhf_lab_state.json"
TRAINER_STATE = "trainer_state.json"


@dataclass(frozen=True)
class ResumePoint:
    """Where a run continues from (None: from the start) and the checkpoints passed over, with why."""

    path: Path | None = None
    step: int = 0
    skipped: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def step_of(path: Path) -> int | None:
    name = path.name
    if not name.startswith(PREFIX) or not name[len(PREFIX) :].isdigit():
        return None
    return int(name[len(PREFIX) :])


def write_manifest(folder: Path, step: int, run_id: str | None = None) -> None:
    """Every file with its size and SHA-256, the run's identity and this user's signature: see checkpoint_identity."""
    paths = [p for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST]
    manifest = {
        "step": step,
        "run_id": run_id,
        "files": {str(p.relative_to(folder)): p.stat().st_size for p in paths},
        # Each file is synced as it is hashed: the manifest, written last, never outlives the files after a crash.
        "sha256": {str(p.relative_to(folder)): identity.sha256_of(p, sync=True) for p in paths},
    }
    write_json_atomic(folder / MANIFEST, {**identity.sign(manifest), "written_at": time.time()})


def problem(folder: Path) -> str | None:
    """Why folder is not a complete checkpoint, or None when it is."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return f"no {MANIFEST} (the run was stopped while writing it)"
    try:
        recorded = json.loads(manifest.read_text())
        files = recorded["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"unreadable {MANIFEST}"
    for name, size in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, {size} were written"
    if TRAINER_STATE not in files:
        return f"no {TRAINER_STATE}"
    return None


def scan(root: Path) -> tuple[list[tuple[int, Path]], list[tuple[str, str]]]:
    """Complete checkpoints under root, oldest first, and the incomplete ones with the reason."""
    complete, skipped = [], []
    if not root.is_dir():
        return complete, skipped
    for path in sorted((root / STAGING).glob(f"{PREFIX}*")) if (root / STAGING).is_dir() else []:
        skipped.append((str(path), "left half-written by a stopped run"))
    for path in root.iterdir():
        step = step_of(path)
        if step is None or not path.is_dir():
            continue
        reason = problem(path)
        if reason:
            skipped.append((str(path), reason))
        else:
            complete.append((step, path))
    complete.sort()
    return complete, skipped


def resume_point(run_dir: Path, setting: str, unpickled_by: str | None = None) -> ResumePoint:
    """train.resume: auto (the newest complete checkpoint of this run directory, if any), never, or a path.
    A path that is not a complete checkpoint is a config error. unpickled_by: the engine that would read the
    checkpoint with pickle (None: it is read weights-only); then a checkpoint this user's rlhf_lab did not write,
    exactly as written, is refused before anything reads it."""
    from rlhf_lab.errors import ConfigError

    if setting == "never":
        return ResumePoint()
    if setting != "auto":
        path = Path(setting).expanduser().absolute()
        if not path.is_dir():
            raise ConfigError(
                "train.resume", f"no checkpoint directory at {path}; give a checkpoint-<step> directory, auto or never"
            )
        reason = problem(path)
        if reason:
            raise ConfigError("train.resume", f"{path} is not a complete checkpoint: {reason}")
        point = ResumePoint(path=path, step=json.loads((path / MANIFEST).read_text())["step"])
    else:
        complete, skipped = scan(run_dir / CHECKPOINTS)
        if not complete:
            return ResumePoint(skipped=tuple(skipped))
        step, path = complete[-1]
        point = ResumePoint(path=path, step=step, skipped=tuple(skipped))
    if unpickled_by:
        check_ours(point.path, unpickled_by)
    return point


def check_ours(path: Path, engine: str) -> None:
    """Refuse, before any read, a checkpoint that an unpickling engine would load unless this user's rlhf_lab wrote
    it exactly as it is."""
    from rlhf_lab.errors import ConfigError

    reason = identity.not_ours(path, json.loads((path / MANIFEST).read_text()), MANIFEST)
    if reason:
        raise ConfigError(
            "train.resume",
            f"{path} is not a checkpoint your runs wrote ({reason}), and {engine} reads checkpoints with pickle, "
            "which runs any code hidden in them; resume only your own checkpoints, start over with "
            "train.resume=never, or set train.trust_checkpoint=true if you trust whoever wrote it",
        )


def check_not_finished(point: ResumePoint, max_steps: int, num_train_epochs: float) -> None:
    """Resuming a checkpoint at or past the run's end would train nothing (or one step more than asked): say so."""
    from rlhf_lab.errors import ConfigError

    if point.path is None:
        return
    ways = "or start over with train.resume=never (the earlier run's files are kept under before-<time>/)"
    if 0 < max_steps <= point.step:
        raise ConfigError(
            "train.max_steps",
            f"is {max_steps} but the checkpoint the run would resume ({point.path}) "
            f"is already at step {point.step}; raise train.max_steps above "
            f"{point.step} to train further, {ways}",
        )
    if max_steps == -1:
        try:
            state = json.loads((point.path / TRAINER_STATE).read_text())
            planned, epochs = int(state["max_steps"]), float(state["num_train_epochs"])
        except (OSError, ValueError, KeyError, TypeError):
            return
        if epochs == num_train_epochs and 0 < planned <= point.step:
            raise ConfigError(
                "train.num_train_epochs",
                f"the checkpoint the run would resume ({point.path}) has "
                f"already trained its {num_train_epochs:g} epochs ({point.step} "
                f"steps); raise train.num_train_epochs to train further, {ways}",
            )


def rotate(root: Path, keep: int | None) -> None:
    """Keep the newest `keep` complete checkpoints; incomplete ones are left for a person to look at."""
    if keep is None:
        return
    complete, _ = scan(root)
    for _, path in complete[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


def install_atomic_saves(trainer, keep: int | None, run_id: str | None) -> None:
    """Route the trainer's checkpoint saves through the staging directory, the manifest and the rename.

    Every process writes its part (ZeRO shards, per-rank RNG states) into the staging directory; the main process
    then adds the algorithm's state and the manifest, renames it, and drops checkpoints beyond `keep`."""
    from rlhf_lab.runtime.ranks import barrier, is_main

    original = trainer._save_checkpoint

    def save_checkpoint(model, trial):
        root = Path(trainer.args.output_dir)
        staging = root / STAGING
        name = f"{PREFIX}{trainer.state.global_step}"
        if is_main():
            shutil.rmtree(staging, ignore_errors=True)  # leftovers of a killed run, already reported
            staging.mkdir(parents=True, exist_ok=True)
        barrier()
        trainer._get_output_dir = lambda trial=None: str(staging)
        try:
            original(model, trial)
            barrier()  # every rank's part (its RNG state, its ZeRO shard) is written before the manifest lists them
            if is_main():
                state = trainer.lab_checkpoint_state()
                if state is not None:
                    write_json_atomic(staging / name / LAB_STATE, state)
                write_manifest(staging / name, trainer.state.global_step, run_id)
        except Exception as e:
            code = os_error_code(e)
            if is_main():
                shutil.rmtree(staging / name, ignore_errors=True)  # free what it took; nothing half-written stays
            if code is None:
                raise
            raise OutputError(_explain(code, getattr(e, "filename", None), root)) from e
        finally:
            del trainer._get_output_dir  # back to the class's method
        barrier()
        if is_main():
            publish_dir(staging / name, root / name)
            rotate(root, keep)
            log.info("checkpoint %s written", root / name)
        barrier()

    trainer._save_checkpoint = save_checkpoint


def os_error_code(e: BaseException) -> int | None:
    """The errno of a failed write: an OSError's, or the one the Rust tokenizer library puts in its message."""
    if isinstance(e, OSError) and e.errno:
        return e.errno
    match = re.search(r"os error (\d+)", str(e))
    return int(match.group(1)) if match else None


def _explain(code: int, filename: str | None, root: Path) -> str:
    where = filename or root
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return (
            f"no space to write a checkpoint under {root} ({os.strerror(code)} at {where}); free disk space, "
            "keep fewer checkpoints (train.save_total_limit) or save less often (train.save_steps)"
        )
    return f"cannot write a checkpoint under {root}: {os.strerror(code)} at {where}"


def read_lab_state(path: Path) -> dict | None:
    state = path / LAB_STATE
    return json.loads(state.read_text()) if state.is_file() else None
