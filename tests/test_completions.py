"""algorithm.log_completions: GRPO's and PPO's sampled answers at each logged step, on disk and in wandb; every run's
report picture and evaluation table in wandb."""

import pandas as pd
from conftest import TINY, run_cli

from rlhf_lab.paths import cache_dir

ONLINE = [
    "dataset=arith_math",
    "algorithm.max_completion_length=6",
    "algorithm.reward_funcs=[accuracy]",
    "algorithm.log_completions=true",
    "train.max_steps=2",
]


def _wandb_record(run_dir) -> bytes:
    (offline,) = list((run_dir / "wandb").glob("offline-run-*"))
    return next(offline.glob("run-*.wandb")).read_bytes()


def test_grpo_writes_its_completions_and_sends_them_with_the_report_to_wandb(tmp_path, tiny_model_dir):
    run = tmp_path / "run"
    proc = run_cli(
        [*TINY, "algorithm=grpo", "algorithm.num_generations=2", *ONLINE, "logger=wandb", f"hydra.run.dir={run}"],
        cwd=tmp_path,
        env={"WANDB_MODE": "offline", "WANDB_API_KEY": "", "HOME": str(tmp_path), "RLHF_LAB_CACHE": str(cache_dir())},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = sorted((run / "checkpoints" / "completions").glob("completions_*.parquet"))
    assert [f.name for f in files] == ["completions_00001.parquet", "completions_00002.parquet"]
    frame = pd.read_parquet(files[-1])
    assert {"step", "prompt", "completion", "accuracy"} <= set(frame.columns) and len(frame) == 2
    record = _wandb_record(run)
    assert b"completions" in record and b"report/curves" in record and b"report/evaluation" in record


def test_ppo_writes_its_completions_in_the_same_layout(tmp_path, tiny_model_dir):
    run = tmp_path / "run"
    proc = run_cli([*TINY, "algorithm=ppo", *ONLINE, "train.eval=false", f"hydra.run.dir={run}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = sorted((run / "checkpoints" / "completions").glob("completions_*.parquet"))
    assert [f.name for f in files] == ["completions_00001.parquet", "completions_00002.parquet"]
    frame = pd.read_parquet(files[0])
    assert list(frame.columns) == ["step", "prompt", "completion", "score", "accuracy"]
    assert (frame["step"] == 1).all() and len(frame) == 2
    assert frame["score"].between(0, 1).all()  # the accuracy reward, 0 or 1 per answer
