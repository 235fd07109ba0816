"""Hydra launchers and sweepers: the SLURM preset's sizing, a submitit (local) sweep, an Optuna search."""

import csv
import math

import pytest
import yaml
from conftest import CONF_DIR, read_summary, run_cli

from rlhf_lab.runtime.job import objective_value

pytestmark = pytest.mark.slow

QUICK = [
    "model=tiny",
    "train.max_steps=2",
    "dataset.max_samples=8",
    "train.per_device_train_batch_size=2",
    "train.gradient_accumulation_steps=1",
]


def test_slurm_preset_sizes_each_job_from_the_distributed_group():
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from rlhf_lab.cli.main import register_start_resolver
    from rlhf_lab.config import register_schemas

    register_schemas()
    register_start_resolver()
    GlobalHydra.instance().clear()
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "hydra/launcher=slurm",
                "distributed=zero3",
                "distributed.nproc_per_node=8",
                "distributed.nnodes=2",
                "hydra.launcher.partition=gpu",
                "hydra.launcher.account=lab",
            ],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    # One task per node starts the node's 8 workers with torch.distributed.run.
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 1, 8)
    assert (launcher.partition, launcher.account, launcher.timeout_min) == ("gpu", "lab", 240)


def test_submitit_local_sweep_gathers_every_job(tmp_path):
    proc = run_cli(
        ["-m", "hydra/launcher=submitit_local", *QUICK, "train.eval=false", "algorithm.beta=0.1,0.3"], tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs" / "sweeps").iterdir()
    rows = list(csv.DictReader((sweep / "sweep_summary.csv").open()))
    assert sorted(r["algorithm.beta"] for r in rows) == ["0.1", "0.3"]
    assert all(r["status"] == "completed" for r in rows)
    assert (sweep / ".submitit").is_dir()  # the jobs ran through submitit


def test_optuna_search_maximises_the_objective_each_job_returns(tmp_path):
    proc = run_cli(["hparams_search=dpo_beta", "hydra.sweeper.n_trials=3", *QUICK], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs" / "sweeps").iterdir()
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert len(jobs) == 3
    accuracies = [read_summary(j)["eval_after"]["accuracy"] for j in jobs]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == max(accuracies)
    assert 0.01 <= best["best_params"]["algorithm.beta"] <= 1.0
    assert 1e-5 <= best["best_params"]["train.learning_rate"] <= 1e-3
    rows = list(csv.DictReader((sweep / "sweep_summary.csv").open()))
    assert len(rows) == 3 and "algorithm.beta" in rows[0] and "train.learning_rate" in rows[0]
    assert "Best trial: algorithm.beta=" in (sweep / "sweep_summary.md").read_text()


def test_objective_value_reads_a_dotted_key_and_gives_nan_when_missing():
    assert objective_value({"eval_after": {"accuracy": 0.75}}, "eval_after.accuracy") == 0.75
    assert math.isnan(objective_value({"status": "failed"}, "eval_after.accuracy"))


def test_an_objective_that_is_not_a_summary_value_is_a_config_error(tmp_path):
    proc = run_cli(["model=tiny", "objective=accuracy"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "config error: objective: 'accuracy' is not a summary.json value; name one under eval_after, eval_before, "
        "final_train_metrics, train_loss, seconds_per_step (e.g. objective=eval_after.accuracy)"
    ]
