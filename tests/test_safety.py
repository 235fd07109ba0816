"""Values that used to pass the door and do harm later, a torn metrics line on resume, an empty run directory, and
a run whose loss turns NaN: each is one line (exit 2), never a traceback or a run reported as completed."""

from __future__ import annotations

import json

import pytest
from conftest import TINY, read_summary, run_cli


@pytest.mark.parametrize(
    "override, needle",
    [
        ("algorithm.beta=inf", "algorithm.beta: must be a finite number, got inf"),
        ("train.max_grad_norm=nan", "train.max_grad_norm: must be a finite number, got nan"),
        ("train.learning_rate=nan", "train.learning_rate: must be a finite number, got nan"),
        ("train.warmup_ratio=2", "train.warmup_ratio: must be in [0.0, 1.0], got 2.0"),
        ("train.max_grad_norm=-1", "train.max_grad_norm: must be >= 0"),
    ],
)
def test_values_that_do_harm_later_are_one_line_at_the_door(tmp_path, override, needle):
    proc = run_cli([override, "--cfg", "job"], cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr


def test_a_list_value_that_is_not_finite_names_its_index(tmp_path):
    proc = run_cli(["algorithm=grpo", "algorithm.reward_weights=[1,nan]", "--cfg", "job"], cwd=tmp_path)
    assert proc.returncode == 2 and "algorithm.reward_weights[1]: must be a finite number" in proc.stderr


def test_an_empty_run_directory_is_a_config_error_and_nothing_is_written(tmp_path):
    proc = run_cli([*TINY, "hydra.run.dir="], cwd=tmp_path)
    assert proc.returncode == 2
    assert "hydra.run.dir: is '', the current directory" in proc.stderr.strip().splitlines()[-1]
    assert not [p for p in tmp_path.iterdir() if p.name != ".hydra"]


def test_a_torn_last_metrics_line_is_dropped_on_resume(tmp_path, tiny_model_dir):
    run = tmp_path / "run"
    args = [*TINY, "train.max_steps=2", "train.save_steps=1", "train.logging_steps=1", f"hydra.run.dir={run}"]
    assert run_cli(args, cwd=tmp_path).returncode == 0
    metrics = run / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"step": 3, "loss": 0.6')  # a kill mid-append
    proc = run_cli([*args[:-1], "train.max_steps=3", f"hydra.run.dir={run}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "its last line was cut short" in proc.stdout + proc.stderr
    records = [json.loads(line) for line in metrics.read_text().splitlines()]  # every line whole again
    assert read_summary(run)["global_steps"] == 3 and records


def test_a_run_whose_loss_turns_nan_stops_as_failed_without_a_model(tmp_path, tiny_model_dir):
    run = tmp_path / "run"
    args = [*TINY, "train.learning_rate=1e30", "train.max_grad_norm=0", "train.max_steps=4", "train.logging_steps=1"]
    proc = run_cli([*args, f"hydra.run.dir={run}"], cwd=tmp_path)
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("training error:") and "became nan by step" in line and "no model was saved" in line
    summary = read_summary(run)
    assert summary["status"] == "failed"
    assert not (run / "adapter").exists() and not (run / "model").exists()
    # experts may let it run on
    proc = run_cli([*args, "train.stop_on_nan=false", f"hydra.run.dir={tmp_path}/on"], cwd=tmp_path)
    assert proc.returncode == 0 and read_summary(tmp_path / "on")["status"] == "completed"


def test_a_dry_run_with_an_empty_run_directory_says_so_too(tmp_path):
    proc = run_cli(["hydra.run.dir=.", "--cfg", "job"], cwd=tmp_path)
    assert proc.returncode == 2 and "hydra.run.dir: is '.', the current directory" in proc.stderr
