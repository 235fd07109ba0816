"""A run directory is held by one live run at a time: an exclusive lock (flock) on a file inside it, taken by the
main process before it writes anything and released when the process ends (a killed run's lock goes with it).
No torch here: the dry run checks it too."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from rlhf_lab.errors import ConfigError

LOCK_FILE = ".rlhf_lab.lock"


def _busy(run_dir: Path, fd: int) -> ConfigError:
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
        who = f" (pid {holder['pid']} on {holder['host']}, started {time.ctime(holder['since'])})"
    except (ValueError, KeyError, TypeError, OSError):
        who = ""
    return ConfigError(
        "hydra.run.dir",
        f"{run_dir} is in use by a live run{who}; wait for it to end, or give this run its own directory",
    )


def _open(run_dir: Path) -> int | None:
    try:
        return os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:
        return None  # no directory yet: nobody holds it


@contextlib.contextmanager
def claimed(run_dir: Path) -> Iterator[None]:
    """Hold run_dir for the duration; another live run there is a one-line config error."""
    fd = _open(run_dir)
    if fd is None:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(run_dir, fd) from None
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def check_free(run_dir: Path) -> None:
    """The dry run's (and the command line's, before Hydra writes into the directory) look at the lock."""
    if not (run_dir / LOCK_FILE).exists():
        return
    with claimed(run_dir):
        pass
