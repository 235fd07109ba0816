import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_script(name: str):
    """scripts/<name>.py imported as a module (the scripts folder is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


CONF_DIR = str(ROOT / "conf")
# Small and quick settings for end-to-end runs on the tiny model (conf/debug/smoke.yaml); keys given after it win.
TINY = ["debug=smoke"]


def pytest_configure(config):
    # A worker of a parallel session (pytest-xdist, -n N) shares the cores with the other workers: one thread
    # each, set before torch is imported (and inherited by the processes a test starts), since threads that
    # outnumber the cores slow every process several-fold.
    if hasattr(config, "workerinput"):
        os.environ["OMP_NUM_THREADS"] = "1"


class CliResult:
    """What a command left: its exit code and what it printed (as subprocess.CompletedProcess has them)."""

    def __init__(self, args, returncode, stdout, stderr):
        self.args, self.returncode, self.stdout, self.stderr = args, returncode, stdout, stderr


def run_cli(args, cwd, env=None, timeout=600):
    """python -m rlhf_lab ARGS, run in this process: the command line's own entry (cli.main), with its working
    directory, environment and argv, its exit code from SystemExit and its output captured. The heavy imports are
    paid once per test session instead of once per command; the process-wide state a command touches (environment,
    working directory, logging handlers, Hydra's global state) is put back afterwards. Tests of what only a process
    boundary shows (signals, kills, import lightness, launchers' workers) use run_cli_process."""
    import contextlib
    import io
    import logging
    import traceback

    from hydra.core.global_hydra import GlobalHydra

    from rlhf_lab.cli import main as cli
    from rlhf_lab.tracking import sweep

    saved_env, saved_argv, saved_cwd = dict(os.environ), sys.argv[:], os.getcwd()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    out, err = io.StringIO(), io.StringIO()
    os.environ.update({"WANDB_SILENT": "true", **(env or {})})
    os.chdir(cwd)
    sys.argv = ["rlhf_lab", *[str(a) for a in args]]
    cli._job_started, cli._job_may_start, sweep.last_sweep = False, False, None
    GlobalHydra.instance().clear()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main()
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except Exception:  # what the interpreter would print before exiting with 1
                traceback.print_exc()
                code = 1
    finally:
        for handler in root.handlers:
            if handler not in saved_handlers:
                handler.close()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        GlobalHydra.instance().clear()
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
    return CliResult(args, code, out.getvalue(), err.getvalue())


def run_cli_process(args, cwd, env=None, timeout=600):
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
    from rlhf_lab.config.run import build_run
    from rlhf_lab.data.load import load_splits
    from rlhf_lab.training.pipeline import build_trainer as build
    from rlhf_lab.training.pipeline import load_inputs

    run = build_run(compose(list(overrides)), tmp_path)
    splits = load_splits(run.dataset, run.spec.data_format, run.train.seed, images=run.spec.images)
    return build(run, load_inputs(run, splits, bf16))


# One GRPO step on the tiny model: 4 prompts, 2 answers each, 8 tokens per answer.
GRPO_TINY = [
    *TINY,
    "algorithm=grpo",
    "dataset=arith_math",
    "train.per_device_train_batch_size=4",
    "algorithm.num_generations=2",
    "algorithm.max_completion_length=8",
    "train.max_steps=1",
    "train.logging_steps=1",
]


def move_off_reference(model) -> None:
    """Move every trained weight (LoRA B starts at zero, i.e. at the reference), so that losses comparing policy
    and reference, and their gradients, depend on the policy's log-probs."""
    import torch

    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * (0.5 if "lora_B" in name else 0.02))


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

    from rlhf_lab.config import register_schemas

    register_schemas()

    def _compose(overrides=(), return_hydra_config=False):
        GlobalHydra.instance().clear()
        with initialize_config_dir(CONF_DIR, version_base="1.3", job_name="test"):
            return hydra_compose("config", overrides=list(overrides), return_hydra_config=return_hydra_config)

    return _compose


@pytest.fixture(scope="session")
def train(compose):
    """Compose OVERRIDES and train them into RUN_DIR in this process through runtime.job.run_job, without Hydra's
    run machinery (its logging set-up and .hydra/ files): train(["debug=smoke"], tmp_path / "run") -> summary."""
    from omegaconf import open_dict

    from rlhf_lab.runtime.job import run_job

    def _train(overrides, run_dir):
        cfg = compose(overrides, return_hydra_config=True)
        choices = {k: v for k, v in cfg.hydra.runtime.choices.items() if v is not None}
        with open_dict(cfg):
            del cfg["hydra"]
        return run_job(cfg, Path(run_dir), choices=choices, overrides=tuple(overrides))

    return _train
