"""Who wrote a checkpoint, and whether its files are still the ones written.

DeepSpeed ZeRO and sharded FSDP read their checkpoint files with pickle, which runs whatever code a file names.
So each checkpoint's manifest carries the run's identity and a SHA-256 of every file, signed (HMAC-SHA256) with a
key that only this user's rlhf_lab holds (<cache>/checkpoint.key, mode 0600). Before such an engine resumes, the
signature and every hash are checked: a folder someone else wrote, or one whose files changed since, is refused
before anything is read. No torch here: it runs while the config is checked.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from pathlib import Path

from rlhf_lab.paths import cache_dir

KEY_FILE = "checkpoint.key"
_CHUNK = 8 * 2**20


def signing_key() -> bytes:
    """This user's key, made on first use. It is written whole under a temporary name and then linked to its own,
    which fails if another process got there first: parallel first uses agree on one key and never read half a one."""
    path = cache_dir() / KEY_FILE
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{KEY_FILE}.", dir=path.parent)  # mode 0600
        except OSError as e:
            from rlhf_lab.errors import OutputError

            raise OutputError(
                f"cannot write the checkpoint signing key at {path}: {e.strerror or e}; set RLHF_LAB_CACHE to a "
                "writable directory"
            ) from None
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    return bytes.fromhex(path.read_text().strip())


def sha256_of(path: Path, sync: bool = False) -> str:
    """The file's SHA-256; sync: also make its content durable (a checkpoint's files, before its manifest)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
        if sync:
            os.fsync(f.fileno())
    return digest.hexdigest()


def _signed_part(manifest: dict) -> bytes:
    body = {k: manifest[k] for k in ("step", "run_id", "files", "sha256")}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def sign(manifest: dict) -> dict:
    """The manifest with its signature added."""
    signature = hmac.new(signing_key(), _signed_part(manifest), hashlib.sha256).hexdigest()
    return {**manifest, "signature": signature}


def not_ours(folder: Path, manifest: dict, manifest_name: str) -> str | None:
    """Why folder is not a checkpoint this user's rlhf_lab wrote, exactly as written (None when it is)."""
    if not all(k in manifest for k in ("run_id", "sha256", "signature")):
        return "its manifest carries no signature"
    try:
        expected = hmac.new(signing_key(), _signed_part(manifest), hashlib.sha256).hexdigest()
    except (KeyError, TypeError, ValueError):
        return "its manifest is malformed"
    if not hmac.compare_digest(expected, str(manifest["signature"])):
        return "its signature is not this user's (another user or machine wrote it, or the manifest was edited)"
    on_disk = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} - {manifest_name}
    listed = set(manifest["sha256"])
    if on_disk != listed:
        name = sorted(on_disk ^ listed)[0]
        return f"{name} was {'added' if name in on_disk else 'removed'} after it was written"
    for name, digest in manifest["sha256"].items():
        if sha256_of(folder / name) != digest:
            return f"{name} changed after it was written"
    return None
