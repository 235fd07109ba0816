"""Kill -9 after the second checkpoint, run the same command again: the run ends exactly where an uninterrupted one
ends (CPU, fixed seed). Real SIGKILLs of runs in their own processes; the uninterrupted and the resuming runs go
through the same command line in the test's process. -m resume runs these alone."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, run_cli
from safetensors.torch import load_file

pytestmark = pytest.mark.resume

STEPS = 6
COMMON = [
    "model=tiny",
    f"train.max_steps={STEPS}",
    "train.save_steps=1",
    "train.logging_steps=1",
    "train.gradient_accumulation_steps=1",
    "dataset.max_samples=16",
    "train.eval=false",
]
# Rewards that differ between answers, so GRPO and PPO have something to learn from the first step.
LENGTH = "algorithm.reward_funcs=[helpers.custom_rewards:Scaled]"
ALGORITHMS = {
    "dpo": ["algorithm=dpo", "train.per_device_train_batch_size=2"],
    "grpo": [
        "algorithm=grpo",
        "dataset=arith_math",
        "algorithm.num_generations=2",
        "algorithm.max_completion_length=8",
        LENGTH,
        "train.per_device_train_batch_size=4",
    ],
    "ppo": [
        "algorithm=ppo",
        "dataset=arith_math",
        LENGTH,
        "algorithm.max_completion_length=8",
        "algorithm.num_ppo_epochs=2",
        "train.per_device_train_batch_size=2",
    ],
}


def command(algorithm, run_dir):
    return [sys.executable, "-m", "rlhf_lab", *COMMON, *ALGORITHMS[algorithm], f"hydra.run.dir={run_dir}"]


def run(algorithm, run_dir):
    # In this process: only the killed run needs a process of its own.
    proc = run_cli([*COMMON, *ALGORITHMS[algorithm], f"hydra.run.dir={run_dir}"], cwd=ROOT / "tests")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def kill_after_checkpoint(algorithm, run_dir, checkpoint: int):
    """Start the run, SIGKILL it as soon as checkpoint-<checkpoint> has been renamed into place."""
    proc = subprocess.Popen(
        command(algorithm, run_dir),
        cwd=ROOT / "tests",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "WANDB_SILENT": "true"},
    )
    target = run_dir / "checkpoints" / f"checkpoint-{checkpoint}"
    deadline = time.time() + 600
    while not target.is_dir() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "running"  # killed mid-run: nothing says it completed
    done = sorted(int(p.name.split("-")[1]) for p in (run_dir / "checkpoints").glob("checkpoint-*"))
    assert checkpoint in done and max(done) < STEPS, done


def final_state(run_dir: Path):
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [(r["step"], r["loss"]) for r in records if "loss" in r]
    weights = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    critic = run_dir / "adapter" / "value_model" / "adapter_model.safetensors"
    if critic.exists():  # PPO's value model
        weights.update({f"value/{k}": v for k, v in load_file(critic).items()})
    return losses, weights


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, tiny_model_dir, algorithm):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run(algorithm, straight)
    kill_after_checkpoint(algorithm, killed, checkpoint=2)
    # What a kill during a save leaves behind, plus a checkpoint truncated after the fact: both skipped.
    newest = max((killed / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    later = f"checkpoint-{int(newest.name.split('-')[1]) + 1}"
    shutil.copytree(newest, killed / "checkpoints" / ".staging" / later)
    truncated = killed / "checkpoints" / later
    shutil.copytree(newest, truncated)
    weights_file = truncated / "adapter_model.safetensors"
    weights_file.write_bytes(weights_file.read_bytes()[:100])

    proc = run(algorithm, killed)  # the same command again

    summary = json.loads((killed / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["global_steps"] == STEPS
    assert summary["resumed_from"] == str(newest)
    skipped = {s["path"]: s["reason"] for s in summary["skipped_checkpoints"]}
    assert "bytes" in skipped[str(truncated)] and any(".staging" in p for p in skipped)
    assert f"skipping checkpoint {truncated}" in proc.stderr + proc.stdout
    losses_a, weights_a = final_state(straight)
    losses_b, weights_b = final_state(killed)
    assert losses_b == losses_a  # every step's loss, the resumed ones included, exactly
    assert weights_a.keys() == weights_b.keys() and weights_a
    for name in weights_a:
        assert torch.equal(weights_a[name], weights_b[name]), name
    # the run learned something (the comparison is not between two untouched adapters)
    assert any(w.abs().sum() > 0 for n, w in weights_a.items() if "lora_B" in n)
