"""The console while a run trains shows rlhf_lab's own messages (and its progress, tracking/progress.py): the
libraries' progress bars, warnings and log records go to the run's log file (rlhf_lab.log) only, unless
logger.verbose=true; everything is undone when the job ends. Light: nothing heavy is imported at module level."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager

_OWN = "rlhf_lab"


class OwnRecordsOnly(logging.Filter):
    """On the console: rlhf_lab's records, and errors from anywhere."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.split(".")[0] == _OWN or record.levelno >= logging.ERROR


def console_handlers(root: logging.Logger) -> list[logging.Handler]:
    return [h for h in root.handlers if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]


# What quiet_libraries and quiet_loaded_libraries changed, undone (last first) when the job ends.
_undo: list = []


@contextmanager
def quiet_libraries(verbose: bool):
    """During the block: library warnings become log records (kept in the run's log file) and the console shows
    only rlhf_lab's records; quiet_loaded_libraries, called once the libraries are imported, also stops their own
    handlers and progress bars. All put back afterwards. Nothing heavy is imported here: a bad row must still stop
    the run before torch loads."""
    if verbose:
        yield
        return
    quiet = OwnRecordsOnly()
    console = console_handlers(logging.getLogger())
    for handler in console:
        handler.addFilter(quiet)
    logging.captureWarnings(True)
    _undo.append(lambda: [h.removeFilter(quiet) for h in console])
    _undo.append(lambda: logging.captureWarnings(False))
    try:
        yield
    finally:
        while _undo:
            _undo.pop()()


def quiet_loaded_libraries() -> None:
    """Inside quiet_libraries (else nothing): the libraries' own console handlers and progress bars go."""
    if not _undo:
        return
    import datasets
    import torch
    import transformers

    # DeepSpeed warns on import that it fell back to the CPU, even for one process that never uses it; naming the
    # CPU (what it detects anyway) keeps it quiet.
    if not torch.cuda.is_available() and "DS_ACCELERATOR" not in os.environ:
        os.environ["DS_ACCELERATOR"] = "cpu"
        _undo.append(lambda: os.environ.pop("DS_ACCELERATOR", None))
    for name in ("transformers", "datasets", "accelerate"):
        lib = logging.getLogger(name)
        saved = lib.propagate, lib.handlers[:]
        # Their own console handlers go; their records reach the log file through the root logger.
        lib.handlers = [h for h in lib.handlers if isinstance(h, logging.FileHandler)]
        lib.propagate = True
        _undo.append(
            lambda lib=lib, saved=saved: setattr(lib, "handlers", saved[1]) or setattr(lib, "propagate", saved[0])
        )
    if datasets.is_progress_bar_enabled():
        datasets.disable_progress_bars()
        _undo.append(datasets.enable_progress_bars)
    if transformers.utils.logging.is_progress_bar_enabled():
        transformers.utils.logging.disable_progress_bar()
        _undo.append(transformers.utils.logging.enable_progress_bar)
