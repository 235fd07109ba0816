"""Services a run needs over the network (the Hugging Face Hub, wandb), checked with one quick connection before
anything waits on them: an unreachable service is one line within seconds, never a minute of retries ending in a
traceback. The offline switches of the tools underneath (HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE, WANDB_MODE) are
obeyed. No torch here: it runs with the other checks, before a model loads."""

from __future__ import annotations

import logging
import os
import time
from urllib.parse import urlparse

from rlhf_lab.errors import ConfigError, ModelError

log = logging.getLogger("rlhf_lab")

TIMEOUT_S = 5.0


def unreachable(url: str, timeout: float = TIMEOUT_S) -> str | None:
    """Why a TCP connection to url's host cannot be made (None: it can), decided within `timeout` seconds in all.
    The name lookup runs under the same deadline (a resolver that does not answer has no timeout of its own), and
    every address the host has is tried at once: tried in turn, a host whose packets are dropped would cost the
    timeout once per address (huggingface.co has several)."""
    import queue
    import socket

    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    deadline = time.monotonic() + timeout
    answers: queue.SimpleQueue = queue.SimpleQueue()
    _in_thread(answers, socket.getaddrinfo, parsed.hostname, port, 0, socket.SOCK_STREAM)
    try:
        found = answers.get(timeout=timeout)
    except queue.Empty:
        return f"TimeoutError: no address for {parsed.hostname} within {timeout:g} s"
    if isinstance(found, Exception):
        return f"{found.__class__.__name__}: {found}"
    addresses = list(dict.fromkeys((family, sockaddr) for family, _, _, _, sockaddr in found))
    for family, sockaddr in addresses:
        _in_thread(answers, _connect, family, sockaddr, max(deadline - time.monotonic(), 0.01))
    failure = None
    for _ in addresses:
        try:
            result = answers.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            break
        if not isinstance(result, Exception):
            return None
        failure = result
    if failure is None:
        return f"TimeoutError: {parsed.hostname}:{port} did not answer within {timeout:g} s"
    return f"{failure.__class__.__name__}: {failure}"


def _connect(family: int, sockaddr: tuple, timeout: float) -> bool:
    import socket

    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(sockaddr)
    return True


def _in_thread(answers, func, *args) -> None:
    """func(*args) in a daemon thread, its result or its error put on answers: a call still waiting when the
    deadline passes is left behind and never holds the process."""
    import threading

    def run() -> None:
        try:
            answers.put(func(*args))
        except (OSError, UnicodeError, ValueError) as e:
            answers.put(e)

    threading.Thread(target=run, daemon=True).start()


def check_hub_model(repo_id: str, key: str, revision: str | None = None) -> None:
    """A hub model is in the local cache, or the Hub can be reached to download it."""
    from huggingface_hub import constants, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(repo_id, "config.json", revision=revision), str):
        return
    fetch = f"download it where there is a network (hf download {repo_id}) or give a local checkpoint directory"
    if constants.HF_HUB_OFFLINE:
        raise ModelError(
            f"{key}: {repo_id} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) and "
            f"HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) forbids downloading it; {fetch}"
        )
    why = unreachable(constants.ENDPOINT)
    if why:
        raise ModelError(
            f"{key}: {repo_id} is not in the local Hugging Face cache and the Hub at {constants.ENDPOINT} "
            f"cannot be reached ({why}); {fetch}, or set HF_ENDPOINT to a mirror"
        )


def check_models(run) -> None:
    """Every model the run loads (the policy, and a teacher, reference, reward or value model) can be had."""
    from rlhf_lab.models.source import resolve_source

    wanted = {"model.name_or_path": (run.model.name_or_path, run.model.revision)}
    for k, path in run.algorithm.model_paths().items():
        wanted[f"algorithm.{k}"] = (path, run.algorithm.model_pins(k)[0])  # each model's own revision
    for key, (path, revision) in wanted.items():
        source = resolve_source(path, key=key)
        if source.kind == "hub":
            check_hub_model(source.location, key, revision)
    for key, url in run.algorithm.service_urls().items():
        why = unreachable(url)
        if why:
            raise ConfigError(
                f"algorithm.{key}",
                f"{url} cannot be reached ({why}); start the server first (e.g. python -m rlhf_lab serve-reward "
                "model=RM_RUN port=...) or fix the URL",
            )


_WANDB_MODES = {"online": "online", "run": "online", "offline": "offline", "dryrun": "offline", "disabled": "disabled"}


def wandb_mode(setting: str) -> str:
    """The mode a wandb run starts in: logger.mode when set; with auto, wandb's own switches (WANDB_DISABLED,
    WANDB_MODE), else online when an API key is configured and offline when not. An online run whose server cannot be
    reached is a config error when online was asked for, and offline with a warning when auto chose it."""
    asked = setting != "auto"
    if not asked:
        env_mode = os.environ.get("WANDB_MODE", "").strip().lower()
        if os.environ.get("WANDB_DISABLED", "").strip().lower() in ("true", "1", "yes"):
            return "disabled"
        if env_mode and env_mode not in _WANDB_MODES:
            raise ConfigError(
                "logger.mode",
                f"WANDB_MODE={env_mode} in the environment is not a wandb mode; use online, offline or disabled",
            )
        asked = bool(env_mode)
        setting = _WANDB_MODES[env_mode] if env_mode else ("online" if wandb_has_api_key() else "offline")
    if setting != "online":
        return setting
    server = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
    why = unreachable(server)
    if why is None:
        return "online"
    if asked:
        raise ConfigError(
            "logger.mode",
            f"wandb is to log online but {server} cannot be reached ({why}); set "
            "WANDB_MODE=offline (upload later with `wandb sync`) or logger=none",
        )
    log.warning(
        "wandb: %s cannot be reached (%s); logging offline under the run directory (upload later with `wandb sync`)",
        server,
        why,
    )
    return "offline"


def wandb_has_api_key() -> bool:
    import netrc

    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def tracker_mode(logger) -> str | None:
    """The wandb mode of a run that logs to wandb (None for the other trackers)."""
    return wandb_mode(logger.mode) if logger.backend == "wandb" else None
