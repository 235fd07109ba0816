"""Local means local: a run whose models and data are on this machine opens no network connection, and a Hub that
cannot be reached is one line within seconds, however the network fails.

Each run is a process of its own (tests/helpers/count_network.py), so that an audit hook installed before anything is
imported sees every lookup, and the libraries read the environment the test gives them."""

import json
import os
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from conftest import GRPO_TINY, ROOT, TINY

RUNNER = ROOT / "tests" / "helpers" / "count_network.py"
# Switches of the libraries' own, cleared so that the run's defaults are what is tested (TRL skips its report under
# CI, and a user's telemetry or offline setting would hide a lookup).
CLEARED = (
    "HF_HUB_DISABLE_TELEMETRY",
    "DISABLE_TELEMETRY",
    "DO_NOT_TRACK",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "CI",
    "HF_ENDPOINT",
)


def run_counted(args: list[str], tmp_path: Path, env: dict | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "lookups.json"
    full_env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    full_env.update({"COUNT_NETWORK_OUT": str(out), "WANDB_SILENT": "true", **(env or {})})
    proc = subprocess.run(
        [sys.executable, str(RUNNER), *args, f"hydra.run.dir={tmp_path}/run"],
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc, json.loads(out.read_text())


def is_local(host: str) -> bool:
    return host in ("localhost", "::1", "0.0.0.0", "") or host.startswith("127.")


@pytest.mark.parametrize(
    "overrides", [pytest.param(TINY, id="dpo"), pytest.param(GRPO_TINY, id="grpo", marks=pytest.mark.slow)]
)
def test_a_local_run_looks_up_no_host(tmp_path, overrides):
    # The tiny model, the bundled data and no dashboard: nothing here needs the network. TRL's trainers reported
    # every start to huggingface.co (2 lookups per run: the report, and huggingface_hub's list of agents).
    proc, seen = run_counted([*overrides, "logger=none"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    remote = [entry for entry in seen["lookups"] if not is_local(entry["host"])]
    assert remote == [], remote


def test_telemetry_the_user_turned_on_stays_on():
    # The switch is a default, not an override: the environment the user set is passed on as it is.
    code = "import os, rlhf_lab; print(os.environ['HF_HUB_DISABLE_TELEMETRY'])"
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    ours = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    theirs = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "HF_HUB_DISABLE_TELEMETRY": "0"},
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert (ours.stdout.strip(), theirs.stdout.strip()) == ("1", "0"), ours.stderr + theirs.stderr


def blackholes(stack: ExitStack, count: int) -> int:
    """A port on 127.0.0.1 .. 127.0.0.<count> where connections are never answered (each listener's queue is full,
    so the kernel drops further connection requests, as a firewall that drops packets does)."""
    port = 0
    for k in range(1, count + 1):
        server = stack.enter_context(socket.socket())
        server.bind((f"127.0.0.{k}", port))
        server.listen(0)
        port = server.getsockname()[1]
        for _ in range(4):
            client = stack.enter_context(socket.socket())
            client.setblocking(False)
            client.connect_ex((f"127.0.0.{k}", port))
    time.sleep(0.2)
    with socket.socket() as probe:  # the stand-in must behave as one, or the test proves nothing
        probe.settimeout(0.5)
        with pytest.raises(TimeoutError):
            probe.connect(("127.0.0.1", port))
    return port


@pytest.mark.parametrize("failure", ["dropped", "silent_resolver"])
def test_an_unreachable_hub_is_one_line_within_seconds(tmp_path, failure):
    # A hub model not in the cache, and a Hub with 6 addresses whose packets are dropped (before: 5 s per address
    # tried in turn, 33 s for the run), or whose name the resolver does not answer for (before: the resolver's 60 s,
    # then those 30 s: 93 s).
    with ExitStack() as stack:
        port = blackholes(stack, 6)
        env = {
            "HF_HOME": str(tmp_path / "hf"),
            "HF_ENDPOINT": f"http://hub.invalid:{port}",
            "COUNT_NETWORK_FAKE_DNS": "hub.invalid=127.0.0.1*6",
            "COUNT_NETWORK_DNS_DELAY": "60" if failure == "silent_resolver" else "0",
        }
        start = time.monotonic()
        proc, _ = run_counted(["model=qwen3_4b", "logger=none"], tmp_path, env)
        elapsed = time.monotonic() - start
    lines = [line for line in proc.stderr.splitlines() if "error" in line]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("model error: model.name_or_path: Qwen/Qwen3-4B is not in the"), (
        lines
    )
    assert f"the Hub at http://hub.invalid:{port} cannot be reached" in lines[0], lines[0]
    assert elapsed < 20, elapsed
    assert not (tmp_path / "run").exists()
