"""Path conventions: pkg:// files inside installed packages, the model cache, atomic writes."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

PKG_SCHEME = "pkg://"
# The Hydra config tree (groups and presets), beside the package.
CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def resolve_pkg_path(uri: str) -> Path | None:
    """pkg://<package>/<relative file> -> the file inside the installed package, without importing it.

    Returns None when the package is not installed.
    """
    package, _, relative = uri[len(PKG_SCHEME) :].partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / relative


def resolve_data_path(value: str) -> Path:
    """A dataset path as the user wrote it: pkg:// for bundled files, else relative to the working directory."""
    if value.startswith(PKG_SCHEME):
        resolved = resolve_pkg_path(value)
        return resolved if resolved is not None else Path(value)
    return Path(value).expanduser().absolute()


def cache_dir() -> Path:
    """Where converted and generated models are kept between runs (RLHF_LAB_CACHE overrides)."""
    root = os.environ.get("RLHF_LAB_CACHE") or Path.home() / ".cache" / "rlhf_lab"
    return Path(root)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that a reader never sees a half-written file: temp file in the same dir, then rename."""
    write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write text so that a reader never sees a half-written file: temp file in the same dir, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    sync_dir(path.parent)


def sync_dir(folder: Path) -> None:
    """Make a rename in folder durable: after a power loss the file has its new content or its old, not neither."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems (and platforms) cannot sync a directory
        pass
    finally:
        os.close(fd)


def csv_text(rows: list[dict], columns: list[str]) -> str:
    """rows as CSV text with these columns (other keys ignored), for an atomic write."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_lines_atomic(path: Path, lines: list[str]) -> None:
    """Replace a text file with these lines, all or nothing."""
    write_text_atomic(path, "".join(line + "\n" for line in lines))


def publish_dir(tmp_dir: Path, final_dir: Path) -> None:
    """Move a completely written directory to its final name. An older one there is renamed aside first and removed
    only once the new one is in place, so an interruption between the steps leaves both, never neither."""
    aside = None
    if final_dir.exists():
        aside = final_dir.with_name(f".{final_dir.name}.replaced-{os.getpid()}")
        os.replace(final_dir, aside)
    os.replace(tmp_dir, final_dir)
    sync_dir(final_dir.parent)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def publish_cache_entry(tmp_dir: Path, final_dir: Path, complete: str = "config.json") -> None:
    """Give a cache entry built under a temporary name its final name. Processes that build the same entry at once
    (a job array, parallel tests) all succeed: the first complete entry is kept and later copies are dropped, so an
    entry another process may be reading is never removed. A leftover without its `complete` file is replaced."""
    try:
        os.rename(tmp_dir, final_dir)  # fails while final_dir holds anything
    except OSError:
        if not (final_dir / complete).exists():
            publish_dir(tmp_dir, final_dir)
        else:
            shutil.rmtree(tmp_dir, ignore_errors=True)


def build_once(target: Path, build: Callable[[], Path], complete: str = "config.json") -> Path:
    """target, built by build() unless it is there. Processes that need it at once (a job array, parallel tests) take
    turns on a lock beside it: one builds, the others wait and then find it. A cache that cannot be written is one
    line before any building starts."""
    import fcntl

    from rlhf_lab.errors import OutputError

    if (target / complete).exists():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target.parent / f".{target.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise OutputError(
            f"cannot write the model cache at {target.parent}: {e.strerror or e}; set RLHF_LAB_CACHE to a writable "
            "directory"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if (target / complete).exists():  # another process built it while this one waited
            return target
        return build()
    finally:
        os.close(fd)
