"""User-facing errors: each one becomes a single line on stderr and exit code 2.

Anything raised as one of these is the user's to fix (a config value, a data row, a missing file);
everything else is a bug or a runtime failure and is reported as a failed run.
"""

from __future__ import annotations

import contextlib
import sys

EXIT_USER_ERROR = 2


class UserError(Exception):
    """Base of the errors a user can fix without reading a traceback."""

    kind = "error"

    def one_line(self) -> str:
        text = " ".join(str(self).split())
        return f"{self.kind}: {text}"


def print_error_line(line: str) -> None:
    """Print an error on stderr on a line of its own. A failure inside a training loop leaves its progress bar
    mid-line; ending the open bars first keeps the error at the start of a line, where people and scripts look."""
    tqdm = sys.modules.get("tqdm")  # only if something already drew bars: config-only paths stay light
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):
        with contextlib.suppress(Exception):  # a bar that cannot be closed must not hide the error
            bar.close()
    print(line, file=sys.stderr, flush=True)


class ConfigError(UserError):
    """A config value is wrong. `key` is the dotted key when known (e.g. 'algorithm.beta')."""

    kind = "config error"

    def __init__(self, key: str | None, message: str):
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)

    def under(self, prefix: str) -> ConfigError:
        """The same error with its key placed under a config group (beta -> algorithm.beta)."""
        key = f"{prefix}.{self.key}" if self.key else prefix
        return ConfigError(key, self.message)


class DataError(UserError):
    """A dataset row or file is wrong: names the file, the line or row (1-based) and the field."""

    kind = "data error"

    def __init__(self, path: str, message: str, line: int | None = None, field: str | None = None, unit: str = "line"):
        self.path = path
        self.line = line
        self.field = field
        self.message = message
        # JSON files are numbered by line (path:12); parquet, Arrow and CSV files by record (path row 12).
        where = path if line is None else f"{path}:{line}" if unit == "line" else f"{path} row {line}"
        what = f"field '{field}': {message}" if field else message
        super().__init__(f"{where}: {what}")


class ModelError(UserError):
    """The model cannot be found or loaded as configured."""

    kind = "model error"


class RewardError(UserError):
    """A reward function failed or returned something unusable: names the reward and the dataset row."""

    kind = "reward error"


class RewardServiceDown(RewardError):
    """A reward server or judge did not answer within its retries: the run stops (with a checkpoint) rather than
    train on missing rewards."""


class Diverged(UserError):
    """Training produced a NaN or infinite loss or gradient norm: the run stops, as failed."""

    kind = "training error"


class OutputError(UserError):
    """The run cannot write its outputs (a full disk, a quota, a directory it may not write): names the place."""

    kind = "output error"


class Interrupted(BaseException):
    """The run was stopped by a signal (SIGTERM, SIGINT): a BaseException, like KeyboardInterrupt, so that nothing
    on the way mistakes it for an error to recover from. `checkpoint` is the checkpoint saved on the way out."""

    def __init__(self, signal_name: str, checkpoint: str | None = None, exit_code: int = 130):
        self.signal_name, self.checkpoint, self.exit_code = signal_name, checkpoint, exit_code
        saved = f"; checkpoint {checkpoint}" if checkpoint else "; no checkpoint was written"
        super().__init__(f"stopped by {signal_name}{saved}")
