"""Secrets in a run's config: found once, masked in everything the run records, kept where they are used.

A value is a secret when
- it was read from the environment: its entry is an interpolation that calls ``oc.env`` (``oc.decode`` of one
  included), or one whose resolved text holds the value of an environment variable the config reads with
  ``oc.env`` (``${algorithm.other}`` pointing at such an entry); or
- its name marks a credential. The name is split into parts at ``_``, ``-``, ``.`` and lower-to-upper case changes,
  and compared lower-cased: it marks a credential when any part is one of CREDENTIAL_PARTS (secret, password,
  authorization, auth, apikey, ...), or when its last part is ``key`` or ``token`` (a tokenizer's special tokens,
  pad_token, eos_token, ..., excepted). So api_key, hf_token, access_token, token, client_secret, Authorization,
  X-Api-Key and db_password are credentials; api_key_env (the name of a variable), max_tokens, max_new_tokens,
  num_tokens, tokenizer, token_id, key_column, reward_funcs and pad_token are not. A credential's whole value is
  masked, however deep (a dict of headers under ``auth``). A dotted override key is one name: every part counts.

Values that hold nothing (null, "", true, false) are kept as they are. Everything a run records (summary.json and
its report, the fingerprint, the trackers' config, the run name, hence logs and TRL's training arguments) holds MASK
in a credential's place, and the interpolation as written (``${oc.env:VAR}``) in the place of any other value read
from the environment; the typed config objects the run is built from keep the real value, so the code that uses a
secret (a reward's client) receives it. Overrides are recorded as typed: an interpolation stays unresolved, and a
credential given literally (``...api_key=sk-...`` or ``{api_key: sk-...}`` inside a value) is masked.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

MASK = "***"
# Where the launching process hands the real values to the worker processes it starts (never to a file).
ENV_VAR = "RLHF_LAB_SECRETS"

# A part anywhere in the name makes it a credential.
CREDENTIAL_PARTS = frozenset(
    {"secret", "secrets", "password", "passwd", "passphrase", "authorization", "auth", "credential", "credentials"}
    | {"apikey", "apitoken"}
)
# The last part only: a key or a token *is* the value (api_key); elsewhere they name or count one (api_key_env,
# token_id).
CREDENTIAL_LAST_PARTS = frozenset({"key", "token"})
# Tokenizer vocabulary, not credentials: pad_token, eos_token, ...
_SPECIAL_TOKENS = frozenset({"pad", "eos", "bos", "unk", "sep", "cls", "mask", "special", "start", "end", "stop"})

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_ENV_NAMES = re.compile(r"oc\.env\s*:\s*['\"]?([^,'\"}\s]+)")

Place = tuple  # a value's place in the resolved config: its keys and list indices


def name_parts(name: str) -> list[str]:
    return [p.lower() for p in re.split(r"[_\-.]+", _CAMEL.sub("_", str(name))) if p]


def is_credential_name(name: str) -> bool:
    """Whether a key (or dotted override key) names a credential, by the rule in this module's docstring."""
    parts = name_parts(name)
    if not parts:
        return False
    if any(p in CREDENTIAL_PARTS for p in parts):
        return True
    last = parts[-1]
    return last in CREDENTIAL_LAST_PARTS and not (last == "token" and len(parts) > 1 and parts[-2] in _SPECIAL_TOKENS)


def _holds_nothing(value: Any) -> bool:
    return value is None or value == "" or isinstance(value, bool)


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _env_values(raw: Any) -> set[str]:
    """The values of the environment variables the config reads with oc.env (those set and not empty)."""
    names = {n for s in _strings(raw) for n in _ENV_NAMES.findall(s)}
    return {os.environ[n] for n in names if os.environ.get(n)}


def find_secrets(
    cfg: DictConfig, resolved: dict | None = None, places: Iterable[Place] = ()
) -> list[tuple[Place, Any]]:
    """(place, real value) of each secret in resolved (default: cfg resolved), plus the given places (those a
    launching process already found)."""
    raw = OmegaConf.to_container(cfg, resolve=False)
    resolved = OmegaConf.to_container(cfg, resolve=True) if resolved is None else resolved
    env_values = _env_values(raw)
    found: list[tuple[Place, Any]] = []

    def walk(raw_value: Any, value: Any, path: Place) -> None:
        if _holds_nothing(value):
            return
        named = bool(path) and isinstance(path[-1], str) and is_credential_name(path[-1])
        interpolated = isinstance(raw_value, str) and "${" in raw_value
        if named or (
            interpolated and ("oc.env" in raw_value or any(v in s for s in _strings(value) for v in env_values))
        ):
            found.append((path, value))
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(raw_value.get(k) if isinstance(raw_value, dict) else None, v, (*path, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(raw_value[i] if isinstance(raw_value, list) and i < len(raw_value) else None, v, (*path, i))

    walk(raw, resolved, ())
    known = {p for p, _ in found}
    for path in map(tuple, places):
        value = _get(resolved, path)
        if path not in known and not _holds_nothing(value):
            found.append((path, value))
    return found


def _get(tree: Any, path: Place) -> Any:
    for step in path:
        try:
            tree = tree[step]
        except (KeyError, IndexError, TypeError):
            return None
    return tree


def _replaced(tree: Any, places: Iterable[tuple[Place, Any]]) -> Any:
    tree = copy.deepcopy(tree)
    for path, value in places:
        node = _get(tree, path[:-1])
        if (isinstance(node, dict) and path[-1] in node) or (isinstance(node, list) and path[-1] < len(node)):
            node[path[-1]] = value
    return tree


def masked(resolved: dict, secrets: Iterable[tuple[Place, Any]], raw: dict | None = None) -> dict:
    """A copy of resolved with MASK in each secret's place. Given the unresolved config (raw), a value read from the
    environment under a name that is not a credential's is recorded as its interpolation instead (``${oc.env:MODELS}
    /x``): it says where the value came from, and a run rebuilt from the record (export, eval) resolves it again in
    its own environment."""

    def shown(path: Place) -> Any:
        text = _get(raw, path) if raw is not None else None
        named = isinstance(path[-1], str) and is_credential_name(path[-1])
        return text if isinstance(text, str) and "${" in text and not named else MASK

    return _replaced(resolved, [(p, shown(p)) for p, _ in secrets if p])


def restored(masked_config: dict, secrets: Iterable[tuple[Place, Any]]) -> dict:
    """A copy of a masked config with the real values back in their places."""
    return _replaced(masked_config, [(tuple(p), v) for p, v in secrets if p])


def mask_resolved(cfg: DictConfig, resolved: dict | None = None) -> dict:
    """resolved (default: cfg resolved) with every secret masked: what a run records."""
    resolved = OmegaConf.to_container(cfg, resolve=True) if resolved is None else resolved
    return masked(resolved, find_secrets(cfg, resolved), OmegaConf.to_container(cfg, resolve=False))


# `name: value` inside an override's dict value: a quoted string or text up to the next , } or ].
_ENTRY = re.compile(r"(?P<head>[{,]\s*)(?P<name>[\w\-]+)(?P<sep>\s*:\s*)(?P<value>'[^']*'|\"[^\"]*\"|[^,}\]{\[]*)")


def _literal_secret(value: str) -> bool:
    """A typed value that is the secret itself: not empty, null or an interpolation (which names where it is)."""
    text = value.strip().strip("'\"").strip()
    return text not in ("", "null") and not text.startswith("${")


def _setting(key: str) -> str:
    """The setting an override's key names: without its +/++/~ prefix and @package suffix."""
    return key.lstrip("+~").split("@")[0]


def _masked_entry(m: re.Match) -> str:
    """A `name: value` entry (_ENTRY) with a literal credential masked."""
    if is_credential_name(m["name"]) and _literal_secret(m["value"]):
        return f"{m['head']}{m['name']}{m['sep']}{MASK}"
    return m.group()


def mask_override(override: str) -> str:
    key, sep, value = override.partition("=")
    if not sep:
        return override
    if is_credential_name(_setting(key)):
        return f"{key}={MASK}" if _literal_secret(value) else override
    return key + sep + _ENTRY.sub(_masked_entry, value)


def mask_overrides(overrides: Iterable[str]) -> tuple[str, ...]:
    """Command-line overrides as typed, with each credential given literally masked."""
    return tuple(mask_override(str(o)) for o in overrides)


# `key=value` in free text (a log line listing a job's overrides).
_ASSIGN = re.compile(r"(?P<key>[+~]*[\w.\-@/]+)=(?P<value>'[^']*'|\"[^\"]*\"|[^\s,\]}]+)")


def mask_text(text: str) -> str:
    """Free text that may hold overrides (Hydra's launcher logs each job's): literal credentials masked."""

    def assign(m: re.Match) -> str:
        secret = is_credential_name(_setting(m["key"])) and _literal_secret(m["value"])
        return f"{m['key']}={MASK}" if secret else m.group()

    return _ENTRY.sub(_masked_entry, _ASSIGN.sub(assign, text))


def _mask_literals(value: Any, name: str | None = None) -> Any:
    """An unresolved config with each credential given literally masked (an interpolation names where the value
    comes from, and stays)."""
    literal = not isinstance(value, str) or _literal_secret(value)
    if name is not None and is_credential_name(name) and not _holds_nothing(value) and literal:
        return MASK
    if isinstance(value, dict):
        return {k: _mask_literals(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_literals(v) for v in value]
    # Overrides, alone or joined (hydra.job.override_dirname): key=value and {name: value} with credential names.
    return mask_text(value) if isinstance(value, str) else value


# What Hydra writes of a command before its job starts: the config as composed, the overrides, its own settings
# (and a sweep's multirun.yaml). They keep interpolations as typed; only literal credentials need masking.
HYDRA_RECORDS = ("config.yaml", "overrides.yaml", "hydra.yaml", "multirun.yaml")


def scrub_hydra_records(folder: Path) -> None:
    """Mask literal credentials in Hydra's record files in folder (rewritten only where something changed)."""
    import yaml

    from rlhf_lab.paths import write_text_atomic

    for name in HYDRA_RECORDS:
        path = folder / name
        if not path.is_file():
            continue
        data = yaml.safe_load(path.read_text())
        cleaned = _mask_literals(data)
        if cleaned != data:
            write_text_atomic(path, yaml.safe_dump(cleaned, sort_keys=False, allow_unicode=True))


_factory_installed = False


def mask_log_records() -> None:
    """Every log record's message passes mask_text before any handler sees it (Hydra's launchers log each job's
    overrides before rlhf_lab's code runs). Installed once per process."""
    import logging

    global _factory_installed
    if _factory_installed:
        return
    _factory_installed = True
    make = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = make(*args, **kwargs)
        try:
            message = record.getMessage() if "=" in str(record.msg) or record.args else None
        except Exception:  # noqa: BLE001 - a malformed record is the handler's to report, as it would be
            return record
        if message is not None:
            masked = mask_text(message)
            if masked != message:
                record.msg, record.args = masked, ()
        return record

    logging.setLogRecordFactory(factory)
