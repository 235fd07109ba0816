"""One job: build the Run, launch it, and always leave a truthful summary.json behind. run_job takes a composed config
and its run directory (what tests and other callers use); run_hydra_job is the adapter Hydra's entry point calls."""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from rlhf_lab.config.secrets import mask_overrides
from rlhf_lab.errors import EXIT_USER_ERROR, Interrupted, OutputError, UserError, print_error_line
from rlhf_lab.paths import write_json_atomic, write_text_atomic
from rlhf_lab.runtime import fingerprint
from rlhf_lab.runtime.claim import claimed
from rlhf_lab.runtime.interrupts import stop_signals
from rlhf_lab.runtime.ranks import is_main

log = logging.getLogger("rlhf_lab")


def run_hydra_job(cfg: DictConfig) -> dict:
    """The job Hydra started: its run directory, option choices, overrides and (in a sweep) the sweep's directory."""
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    if is_main():
        # Hydra has written its record of the command: a credential typed literally is masked there too.
        from rlhf_lab.config.secrets import scrub_hydra_records

        if hc.output_subdir is not None:
            scrub_hydra_records(Path(hc.runtime.output_dir) / hc.output_subdir)
        if multirun and hc.job.num == 0:  # the sweep's multirun.yaml, once
            scrub_hydra_records(Path(hc.sweep.dir))
    if not multirun:
        from rlhf_lab.config.run import check_run_dir_setting

        check_run_dir_setting(hc.run.dir)
    return run_job(
        cfg,
        Path(hc.runtime.output_dir),
        choices=dict(hc.runtime.choices),
        # As typed: reading the list's items would resolve the interpolations they hold (${oc.env:KEY}).
        overrides=tuple(OmegaConf.to_container(hc.overrides.task, resolve=False)),
        sweep_dir=Path(hc.sweep.dir) if multirun else None,
    )


def run_job(
    cfg: DictConfig,
    run_dir: Path,
    *,
    choices: dict[str, str],
    overrides: tuple[str, ...] = (),
    sweep_dir: Path | None = None,
) -> dict:
    """Train the composed config into run_dir; sweep_dir is set for a job of a sweep (a failing job is recorded and
    returned instead of ending the process). Returns the summary written to run_dir/summary.json."""
    run_dir = Path(run_dir)
    multirun = sweep_dir is not None
    started = time.time()
    summary_path = run_dir / "summary.json"
    base = {
        "status": "running",
        "run_dir": str(run_dir),
        "overrides": list(mask_overrides(overrides)),
        "started_at": started,
    }
    # Made for this command (Hydra's files only): a run that stops on bad input before it begins leaves nothing here.
    fresh = not run_dir.exists() or fingerprint.only_hydra_files(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    def write_summary(path: Path, data: dict) -> None:
        if not is_main():
            return
        try:
            write_json_atomic(path, data)
        except OSError as e:  # e.g. the disk filled up: the earlier summary stays, saying 'running', never 'completed'
            log.error("could not update %s: %s", path, e)
            return
        from rlhf_lab.tracking.report import write_report

        write_report(run_dir, data)  # the run has ended: its report.md and curves

    # One live run per directory: a second one stops here, before it writes or removes anything.
    with claimed(run_dir) if is_main() else contextlib.nullcontext(), stop_signals() as stop, _released():
        try:
            from rlhf_lab.config.run import build_run

            # The processes a launcher started together check the directory once (the main one).
            run = build_run(
                cfg,
                run_dir,
                choices=choices,
                overrides=overrides,
                sweep_dir=sweep_dir,
                check_dir=is_main(),
            )
        except UserError as e:
            if multirun and fresh:
                # One failing job must not stop the sweep: it is recorded and the next job runs.
                failed = failed_fields(e, run_dir)
                write_summary(summary_path, {**base, **failed, "duration_s": round(time.time() - started, 2)})
                log.error("job failed: %s", failed["error"])
                return {**base, **failed}
            _stop_before_start(run_dir, fresh, e)
        if is_main() and run.resume.path is None:
            # Starting from step 0 where an earlier run left files: they are kept, never mixed or overwritten.
            aside = fingerprint.set_aside(run_dir)
            if aside:
                why = "train.resume=never" if run.train.resume == "never" else "no checkpoint to continue from"
                log.warning("%s: the earlier run's files in this directory are kept in %s", why, aside)
        # Written before training so that a run killed midway never looks completed; by the main process only (the
        # others of a run started with torchrun share the directory).
        try:
            if is_main():
                write_json_atomic(summary_path, base)
        except OSError as e:
            raise OutputError(f"cannot write {summary_path}: {e.strerror or e}; choose another hydra.run.dir") from None
        try:
            from rlhf_lab.runtime.launch import launch

            result = launch(run)
        except Interrupted as e:
            write_summary(
                summary_path, {**base, **interrupted_fields(e), "duration_s": round(time.time() - started, 2)}
            )
            print_error_line(f"interrupted: {e}")
            stop.hand_over()  # under submitit: requeue the job, which resumes from the checkpoint
            raise SystemExit(e.exit_code) from None
        except BaseException as e:
            if isinstance(e, UserError) and not multirun and not (run_dir / fingerprint.FILE).exists():
                _stop_before_start(run_dir, fresh, e)  # bad data: the run never began
            failed = failed_fields(e, run_dir)
            write_summary(summary_path, {**base, **failed, "duration_s": round(time.time() - started, 2)})
            if multirun and isinstance(e, Exception):
                # One failing job must not stop the sweep: it is recorded and the next job runs.
                log.error("job failed: %s", failed["error"])
                return {**base, **failed}
            if isinstance(e, UserError):
                # Bad input: one line, exit code 2 (SystemExit passes through Hydra without its report).
                print_error_line(e.one_line())
                raise SystemExit(EXIT_USER_ERROR) from None
            raise
    summary = {**base, **result, "status": "completed", "duration_s": round(time.time() - started, 2)}
    write_summary(summary_path, summary)
    return summary


def _stop_before_start(run_dir: Path, fresh: bool, e: UserError) -> None:
    """Bad input found before the run began: one line, exit code 2, and no directory that looks like a run (one made
    for this command goes; an earlier run's files stay as they were)."""
    if fresh and is_main():
        shutil.rmtree(run_dir, ignore_errors=True)
    print_error_line(e.one_line())
    raise SystemExit(EXIT_USER_ERROR) from None


def release_job_memory() -> None:
    """Between the jobs of a sweep (one process): drop the finished job's models, trainer and cycles now, and give
    freed heap pages back to the system, so that memory does not grow from job to job."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@contextmanager
def _released():
    try:
        yield
    finally:
        from rlhf_lab.rewards.custom import forget_built

        forget_built()  # the next job of a sweep builds its own reward objects
        release_job_memory()


def interrupted_fields(e: Interrupted) -> dict:
    return {"status": "interrupted", "signal": e.signal_name, "checkpoint": e.checkpoint, "error": str(e)}


def failed_fields(e: BaseException, run_dir: Path) -> dict:
    failed = {"status": "failed"}
    if getattr(e, "rank", None) is not None:
        failed["rank"] = e.rank  # a worker process of a multi-process run
    if isinstance(e, UserError):
        failed["error"] = e.one_line()
    elif getattr(e, "traceback_path", None):
        failed["error"] = str(e)
        failed["traceback"] = e.traceback_path
    else:
        failed["error"] = f"{type(e).__name__}: {e}"
        write_text_atomic(run_dir / "traceback.txt", traceback.format_exc())
        failed["traceback"] = str(run_dir / "traceback.txt")
    return failed


# Summary sections an objective can name (what follows the dot depends on the algorithm's evaluation).
OBJECTIVE_SECTIONS = ("eval_after", "eval_before", "final_train_metrics", "train_loss", "seconds_per_step")


def check_objective(key: str) -> None:
    from rlhf_lab.errors import ConfigError

    if key.split(".")[0] not in OBJECTIVE_SECTIONS:
        raise ConfigError(
            "objective",
            f"{key!r} is not a summary.json value; name one under {', '.join(OBJECTIVE_SECTIONS)} "
            "(e.g. objective=eval_after.accuracy)",
        )


def objective_value(summary: dict, key: str) -> float:
    """The summary's value at a dotted key (eval_after.accuracy), as a float for the sweeper; NaN when the job
    failed or did not report it."""
    value = summary
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if not isinstance(value, (int, float)):
        if summary.get("status") == "completed":
            log.warning("objective %s is not in this job's summary.json; the sweeper gets NaN", key)
        return float("nan")
    return float(value)
