import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = str(ROOT / "conf")
# Small and quick settings for end-to-end runs on the tiny model.
TINY = [
    "model=tiny",
    "train.max_steps=2",
    "train.per_device_train_batch_size=2",
    "train.gradient_accumulation_steps=1",
    "train.logging_steps=1",
    "dataset.max_samples=8",
]


def run_cli(args, cwd, env=None, timeout=600):
    """python -m rlhf_lab ARGS in a subprocess; returns the CompletedProcess."""
    full_env = {**os.environ, "WANDB_SILENT": "true", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "rlhf_lab", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def read_summary(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "summary.json").read_text())


def logged_metrics(run_dir: Path) -> set[str]:
    """Every metric name a run wrote to metrics.jsonl."""
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return set().union(*(json.loads(line) for line in lines))


def build_trainer(compose, tmp_path, overrides, bf16=False):
    """The trainer a run would train with, built in-process on the tiny model (nothing trained)."""
    from rlhf_lab.data.load import load_splits
    from rlhf_lab.pipeline import build_trainer as build, load_inputs
    from rlhf_lab.run import build_run

    run = build_run(compose(list(overrides)), tmp_path)
    splits = load_splits(run.dataset, run.spec.data_format, run.train.seed, images=run.spec.images)
    return build(run, load_inputs(run, splits, bf16))


@pytest.fixture(scope="session")
def tiny_model_dir():
    from rlhf_lab.models.tiny import ensure_tiny_llama

    return ensure_tiny_llama()


@pytest.fixture(scope="session")
def compose():
    """Compose the config in-process (no subprocess, no model): compose(["algorithm.beta=0.2"])."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from rlhf_lab.schema import register_schemas

    register_schemas()

    def _compose(overrides=()):
        GlobalHydra.instance().clear()
        with initialize_config_dir(CONF_DIR, version_base="1.3", job_name="test"):
            return hydra_compose("config", overrides=list(overrides))

    return _compose
