"""Config-only commands answer fast and never import the training stack."""

import subprocess
import sys
import time

import pytest

HEAVY = ("torch", "transformers", "trl", "peft", "deepspeed")

PROBE = """
import contextlib, io, runpy, sys, time
sys.argv = ["rlhf_lab", *{args!r}]
out = io.StringIO()
try:
    with contextlib.redirect_stdout(out):
        runpy.run_module("rlhf_lab", run_name="__main__")
except SystemExit as e:
    assert e.code in (0, None), e.code
print("HEAVY=" + ",".join(m for m in {heavy!r} if m in sys.modules))
print("CHARS=" + str(len(out.getvalue())))
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--cfg", "job"],
        ["--help"],
        ["--cfg", "job", "algorithm.beta=0.3", "model=tiny"],
        ["--cfg", "job", "algorithm=grpo", "dataset=arith_math", "model=tiny"],
        ["export", "--help"],
    ],
)
def test_config_only_commands_import_nothing_heavy(tmp_path, args):
    start = time.time()
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=args, heavy=HEAVY)], cwd=tmp_path, capture_output=True, text=True
    )
    elapsed = time.time() - start
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY=\n" in proc.stdout, proc.stdout
    assert int(proc.stdout.split("CHARS=")[1]) > 200  # it printed the config / help
    assert elapsed < 3, elapsed  # ~0.4 s measured; the bound leaves room for a loaded CI machine


def test_a_verbs_bad_arguments_are_refused_before_anything_heavy_loads(tmp_path):
    probe = PROBE.format(args=["export", "run=/nowhere", "dtype=int8"], heavy=HEAVY).replace(
        "assert e.code in (0, None), e.code", "assert e.code == 2, e.code"
    )
    proc = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY=\n" in proc.stdout and proc.stderr.startswith("config error: dtype: got 'int8'")


def test_cfg_job_shows_overrides(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rlhf_lab", "--cfg", "job", "algorithm.beta=0.3", "tuner=full"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0
    assert "beta: 0.3" in proc.stdout and "name: full" in proc.stdout


VALIDATE = """
import sys
from pathlib import Path
from hydra import compose, initialize_config_dir
from rlhf_lab.paths import CONF_DIR
from rlhf_lab.config.run import build_run
from rlhf_lab.config import register_schemas

register_schemas()
with initialize_config_dir(CONF_DIR, version_base="1.3"):
    cfg = compose("config", overrides={overrides!r})
build_run(cfg, Path("."))
print("HEAVY=" + ",".join(m for m in {heavy!r} if m in sys.modules))
"""


@pytest.mark.parametrize(
    "overrides",
    [
        ["algorithm=grpo", "algorithm.reward_funcs=[accuracy,format,cosine,repetition]"],
        ["algorithm=dapo"],
        ["algorithm=gkd", "algorithm.teacher_model=smollm2_135m", "model.num_hidden_layers=20"],
        ["algorithm=ppo", "algorithm.reward_funcs=[accuracy]", "algorithm.kl_estimator=k3"],
    ],
)
def test_validating_online_runs_imports_nothing_heavy(tmp_path, overrides):
    # Rewards are resolved and checked, presets looked up, all without the training stack.
    proc = subprocess.run(
        [sys.executable, "-c", VALIDATE.format(overrides=overrides, heavy=HEAVY)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY=\n" in proc.stdout, proc.stdout


# What an earlier job's launcher leaves in a shell: a config-only command must neither join a process group nor wait.
STALE_LAUNCHER = {
    "WORLD_SIZE": "2",
    "LOCAL_RANK": "0",
    "RANK": "0",
    "MASTER_ADDR": "10.255.255.1",
    "MASTER_PORT": "29999",
}


@pytest.mark.parametrize(
    "args, code", [(["--help"], 0), (["--cfg", "job", "distributed=ddp"], 0), (["--cfg", "job"], 2)]
)
def test_a_stale_launcher_environment_never_joins_a_process_group_on_config_only_commands(tmp_path, args, code):
    import os

    probe = PROBE.format(args=args, heavy=HEAVY).replace(
        "assert e.code in (0, None), e.code", f"assert e.code == {code}"
    )
    start = time.time()
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, **STALE_LAUNCHER},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY=\n" in proc.stdout, proc.stdout
    assert time.time() - start < 10
    if code == 2:  # a single process whose environment says two: one line, naming the stale variables
        (line,) = proc.stderr.strip().splitlines()
        assert "the launcher started 2 processes" in line and "unset WORLD_SIZE and LOCAL_RANK" in line
