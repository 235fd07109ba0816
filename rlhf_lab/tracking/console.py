"""What a person sees while a run trains: one progress line (step, ETA and the algorithm's key metrics), a line per
logging interval, and rlhf_lab's own messages. The libraries' progress bars, warnings and log records go to the
run's log file (rlhf_lab.log) only, unless logger.verbose=true; everything is undone when the job ends."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager

from transformers import TrainerCallback

# The metrics shown, in this order, when the algorithm logs them (the first four found).
KEY_METRICS = (
    "loss",
    "rewards/margins",
    "rewards/accuracies",
    "reward",
    "kl",
    "objective/scores",
    "completions/mean_length",
)
_OWN = "rlhf_lab"


class OwnRecordsOnly(logging.Filter):
    """On the console: rlhf_lab's records, and errors from anywhere."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.split(".")[0] == _OWN or record.levelno >= logging.ERROR


def _console_handlers(root: logging.Logger) -> list[logging.Handler]:
    return [h for h in root.handlers if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]


@contextmanager
def quiet_libraries(verbose: bool):
    """During the block: library warnings become log records (kept in the run's log file), the console shows only
    rlhf_lab's records, and the libraries draw no progress bars. All put back afterwards."""
    if verbose:
        yield
        return
    import datasets
    import torch
    import transformers

    # DeepSpeed warns on import that it fell back to the CPU, even for one process that never uses it; naming the
    # CPU (what it detects anyway) keeps it quiet.
    saved_env = os.environ.get("DS_ACCELERATOR")
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    root = logging.getLogger()
    console = _console_handlers(root)
    quiet = OwnRecordsOnly()
    for handler in console:
        handler.addFilter(quiet)
    libraries = {name: logging.getLogger(name) for name in ("transformers", "datasets", "DeepSpeed", "accelerate")}
    saved = {name: (lib.propagate, lib.handlers[:]) for name, lib in libraries.items()}
    for lib in libraries.values():  # their own console handlers go; their records reach the log file through root
        lib.handlers = [h for h in lib.handlers if isinstance(h, logging.FileHandler)]
        lib.propagate = True
    bars = datasets.is_progress_bar_enabled(), transformers.utils.logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    logging.captureWarnings(True)
    try:
        yield
    finally:
        if saved_env is None:
            os.environ.pop("DS_ACCELERATOR", None)
        logging.captureWarnings(False)
        if bars[0]:
            datasets.enable_progress_bars()
        if bars[1]:
            transformers.utils.logging.enable_progress_bar()
        for name, lib in libraries.items():
            lib.propagate, lib.handlers = saved[name]
        for handler in console:
            handler.removeFilter(quiet)


def key_metrics(logs: dict) -> dict[str, float]:
    return {k: logs[k] for k in KEY_METRICS if isinstance(logs.get(k), (int, float))}


def _fmt(value: float) -> str:
    return f"{value:.4g}"


class _ThroughConsole:
    """A stream for logging handlers while the bar is drawn: their lines print above the bar, not across it."""

    def __init__(self, console):
        self.console = console

    def write(self, text: str) -> int:
        if text.strip():
            self.console.print(text.rstrip("\n"), markup=False, highlight=False, soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        pass


class ConsoleProgress(TrainerCallback):
    """A rich progress bar (step, elapsed, ETA, key metrics) on the main process and a line per logging interval."""

    def __init__(self, total_steps: int):
        from rich.console import Console

        self.console = Console(stderr=True)
        self.total = total_steps
        self.progress = None
        self.task = None
        self.streams = []

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=self.console,
            transient=True,
        )
        total = state.max_steps or self.total
        self.task = self.progress.add_task("train", total=total, completed=state.global_step, metrics="")
        self.progress.start()
        self.streams = [(h, h.setStream(_ThroughConsole(self.console))) for h in _console_handlers(logging.getLogger())]

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.progress is None or not logs:
            return
        shown = key_metrics(logs)
        if not shown:
            return
        text = "  ".join(f"{k} {_fmt(v)}" for k, v in shown.items())
        self.progress.update(self.task, metrics=text)
        total = state.max_steps or self.total
        self.progress.console.print(f"step {state.global_step:>{len(str(total))}}/{total}  {text}", highlight=False)

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
            for handler, stream in self.streams:
                handler.setStream(stream)


def use_console(trainer, total_steps: int) -> None:
    """Replace transformers' progress bar and its printed log dicts by ConsoleProgress."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(ConsoleProgress(total_steps))
