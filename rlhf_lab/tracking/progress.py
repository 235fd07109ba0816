"""What a person sees while a run trains: one progress bar (step, ETA and the algorithm's key metrics) and a line
per logging interval, with rlhf_lab's log lines printed above the bar."""

from __future__ import annotations

import logging

from transformers import TrainerCallback

from rlhf_lab.tracking.console import console_handlers

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
        self.streams = [(h, h.setStream(_ThroughConsole(self.console))) for h in console_handlers(logging.getLogger())]

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
