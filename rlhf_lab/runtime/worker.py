"""One training process started by torch.distributed.run: python -m rlhf_lab.runtime.worker RUN_DIR.

It reads the resolved config the launching process wrote (no second Hydra composition), builds the same Run and
trains. The main process (rank 0) leaves the result; any failing rank leaves its error and traceback."""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import sys
import traceback
from pathlib import Path

import yaml

from rlhf_lab.errors import EXIT_USER_ERROR, Interrupted, UserError, print_error_line
from rlhf_lab.paths import write_json_atomic, write_text_atomic
from rlhf_lab.runtime.interrupts import STOP, stop_signals
from rlhf_lab.runtime.launch import LAUNCH_DIR, RESOLVED_FILE, RESULT_FILE
from rlhf_lab.runtime.ranks import is_main, leave_group, rank


def main(run_dir: Path) -> int:
    folder = run_dir / LAUNCH_DIR
    faulthandler.enable()  # a rank that dies of a signal shows where each of its threads was
    logging.basicConfig(level=logging.INFO if is_main() else logging.WARNING, format="[rank %(process)d] %(message)s")
    # Watched from start to end, the failure report included: once a rank fails, torchrun stops the others with
    # SIGTERM, and under the signal's default action a rank would die before leaving its report.
    with stop_signals():
        try:
            result = _build_and_train(run_dir)
            if is_main():
                write_json_atomic(folder / RESULT_FILE, result)
            leave_group()
            return 0
        except BaseException as e:  # noqa: BLE001 - every failure is reported to the launching process
            STOP.ignore()  # the report first: torchrun's stop, arriving now, must not cut it short
            return _report(e, run_dir, folder)


def _build_and_train(run_dir: Path) -> dict:
    from rlhf_lab.config.run import build_run
    from rlhf_lab.config.secrets import ENV_VAR as SECRETS_ENV
    from rlhf_lab.config.secrets import restored
    from rlhf_lab.config.store import typed_config
    from rlhf_lab.training.pipeline import train

    spec = yaml.safe_load((run_dir / LAUNCH_DIR / RESOLVED_FILE).read_text())
    sweep_dir = Path(spec["sweep_dir"]) if spec["sweep_dir"] else None
    # The file holds the secrets masked; the launching process passed their real values in the environment.
    secrets = [(tuple(place), value) for place, value in json.loads(os.environ.get(SECRETS_ENV) or "[]")]
    run = build_run(
        typed_config(restored(spec["config"], secrets)),
        run_dir,
        choices=spec["choices"],
        overrides=tuple(spec["overrides"]),
        sweep_dir=sweep_dir,
        check_dir=False,
        secret_places=tuple(place for place, _ in secrets),
    )
    return train(run)


def _report(e: BaseException, run_dir: Path, folder: Path) -> int:
    """Leave this rank's failure for the launching process; the exit code to end with."""
    report = {"rank": rank(), "user_error": isinstance(e, UserError), "traceback": None}
    if isinstance(e, Interrupted):
        report.update(
            error=str(e),
            interrupted={"signal": e.signal_name, "checkpoint": e.checkpoint, "exit_code": e.exit_code},
        )
        write_json_atomic(folder / f"error-rank{rank()}.json", report)
        return e.exit_code
    if isinstance(e, UserError):
        report["error"] = e.one_line()
    else:
        report["error"] = f"{type(e).__name__}: {e}"
        path = run_dir / f"traceback-rank{rank()}.txt"
        write_text_atomic(path, "".join(traceback.format_exception(e)))
        report["traceback"] = str(path)
    write_json_atomic(folder / f"error-rank{rank()}.json", report)
    print_error_line(f"rank {rank()}: {report['error']}")
    return EXIT_USER_ERROR if isinstance(e, UserError) else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
