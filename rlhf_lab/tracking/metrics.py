"""metrics.jsonl: every logged training record as one JSON line, written as it happens."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from transformers import TrainerCallback

from rlhf_lab.paths import write_lines_atomic
from rlhf_lab.runtime.ranks import is_main


def process_start_time() -> float:
    import psutil

    return psutil.Process(os.getpid()).create_time()


def read_records(path: Path) -> list[dict]:
    """The records of a metrics file. A last line cut short (a full disk, a kill mid-append) is dropped with a
    warning; a broken line before the last is not something an append leaves, so it stays an error."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i != len(lines) - 1:
                from rlhf_lab.errors import OutputError

                raise OutputError(
                    f"{path}: line {i + 1} is not a JSON record, so the run's records cannot be continued; "
                    "move the file aside and resume, or start over with train.resume=never"
                ) from None
            logging.getLogger("rlhf_lab").warning(
                "%s: its last line was cut short (%d characters) and is dropped; the steps after the checkpoint are "
                "trained and recorded again",
                path,
                len(line),
            )
    return records


class MetricsFile(TrainerCallback):
    def __init__(self, path: Path, keep_until_step: int | None = None):
        """keep_until_step: a resumed run keeps the records of the steps up to its checkpoint (the ones after it
        are trained again); None starts a new file."""
        self.path = path
        self.records: list[dict] = []
        if keep_until_step is not None and path.is_file():
            kept = read_records(path)
            # The stopped run's end-of-training record (train_runtime, ...) described a run that did not finish.
            self.records = [r for r in kept if r.get("step", 0) <= keep_until_step and "train_runtime" not in r]
        if is_main():
            write_lines_atomic(path, [json.dumps(r) for r in self.records])
        self.train_start_at: float | None = None  # seconds from process start to the start of training
        self.first_step_at: float | None = None  # ... and to the end of the first optimizer step

    def on_train_begin(self, args, state, control, **kwargs):
        self.train_start_at = round(time.time() - process_start_time(), 2)

    def on_step_end(self, args, state, control, **kwargs):
        if self.first_step_at is None:
            self.first_step_at = round(time.time() - process_start_time(), 2)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        record = {"step": state.global_step, "epoch": state.epoch, **logs, "time": round(time.time(), 3)}
        self.records.append(record)
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def last_train_metrics(self) -> dict:
        """The newest per-step record (loss, rewards, ...), not the end-of-training aggregate."""
        for record in reversed(self.records):
            if "loss" in record:
                return {k: v for k, v in record.items() if k not in ("time",)}
        return {}
