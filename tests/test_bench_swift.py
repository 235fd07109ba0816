"""scripts/bench.py's ms-swift side, against a stand-in that writes logging.jsonl as `swift rlhf` does."""

import os
import stat
import subprocess
import sys

import pytest
from conftest import ROOT, load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("bench")


# A stand-in for an environment's python running `-m swift.cli.rlhf ... --output_dir DIR`: after 0.5 s of
# "start-up" it logs three steps of 0.2 s each in ms-swift's layout (train_speed = elapsed / steps done).
STAND_IN = """#!/usr/bin/env python3
import json, sys, time, pathlib
out = pathlib.Path(sys.argv[sys.argv.index("--output_dir") + 1]) / "v0-20261204-000000"
out.mkdir(parents=True)
time.sleep(0.5)
begin = time.time() - 0.2
with open(out / "logging.jsonl", "a") as log:
    for step in (1, 2, 3):
        if step > 1:
            time.sleep(0.2)
        log.write(json.dumps({"loss": 0.69, "global_step/max_steps": f"{step}/3", "elapsed_time": "0s",
                              "train_speed(s/it)": (time.time() - begin) / step}) + "\\n")
        log.flush()
    log.write(json.dumps({"train_runtime": 0.6, "global_step/max_steps": "3/3"}) + "\\n")
"""


def test_swift_side_reads_step_times_from_its_log(bench, tmp_path):
    python = tmp_path / "python"
    python.write_text(STAND_IN)
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    s = dict(
        steps=3,
        batch=4,
        accumulation=1,
        max_length=128,
        lora_r=8,
        bf16=False,
        num_generations=4,
        max_completion_length=8,
    )
    result = bench.swift_run(str(python), "dpo", "some-model", s, tmp_path, dict(os.environ))
    assert "error" not in result, result
    assert result["seconds_per_step"] == pytest.approx(0.2, abs=0.05)
    assert result["samples_per_s"] == pytest.approx(4 / result["seconds_per_step"], rel=0.01)
    assert result["tokens_per_s"] is None
    # the first step ends about 0.7 s after the start; training started 0.2 s before that
    assert 0.5 < result["first_step_at_s"] < 1.5
    assert result["first_step_at_s"] - result["train_start_at_s"] == pytest.approx(0.2, abs=0.05)
    assert result["peak_rss_mb"] > 1


def test_swift_side_reports_a_failed_run(bench, tmp_path):
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named swift' >&2\nexit 1\n")
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    s = dict(
        steps=3,
        batch=4,
        accumulation=1,
        max_length=128,
        lora_r=8,
        bf16=False,
        num_generations=4,
        max_completion_length=8,
    )
    assert bench.swift_run(str(python), "grpo", "m", s, tmp_path, dict(os.environ)) == {
        "error": "ModuleNotFoundError: No module named swift"
    }


def test_swift_command_carries_the_bench_settings(bench):
    s = dict(
        steps=12,
        batch=4,
        accumulation=1,
        max_length=128,
        lora_r=8,
        bf16=True,
        num_generations=4,
        max_completion_length=64,
    )
    cmd = bench.swift_command("py", "grpo", "/m", s, ROOT / "out")
    value = {flag: cmd[cmd.index(flag) + 1] for flag in cmd if flag.startswith("--")}
    assert cmd[:3] == ["py", "-m", "swift.cli.rlhf"]
    assert value["--rlhf_type"] == "grpo" and value["--num_generations"] == "4" and value["--max_steps"] == "12"
    assert value["--max_completion_length"] == "64" and value["--per_device_train_batch_size"] == "4"
    assert value["--bf16"] == "true" and value["--torch_dtype"] == "float32" and value["--lora_rank"] == "8"
    assert value["--dataset"].endswith("arith_math/train.jsonl")
    assert cmd[cmd.index("--reward_funcs") + 1 : cmd.index("--reward_funcs") + 3] == ["accuracy", "format"]


def test_a_missing_swift_python_is_one_line_before_anything_runs(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench.py"),
            "--swift-python",
            "/no/such/python",
            "--out",
            str(tmp_path / "b.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "bench: --swift-python /no/such/python: no such executable; give the python of an environment where "
        "ms-swift is installed"
    ]
    assert not (tmp_path / "b.json").exists()
