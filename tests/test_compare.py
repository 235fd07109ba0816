"""compare: runs side by side, with the settings that differ, their results and their curves."""

import csv

from conftest import TINY, run_cli

SHORT = [*TINY, "train.max_steps=3", "train.eval=false"]


def test_runs_and_a_sweep_side_by_side(tmp_path, tiny_model_dir, train):
    for beta in ("0.1", "0.5"):
        assert train([*SHORT, f"algorithm.beta={beta}"], tmp_path / "runs" / f"beta{beta}")["status"] == "completed"
    sweep = tmp_path / "sweep"
    args = ["-m", *SHORT, "algorithm.loss_type=sigmoid,ipo", f"hydra.sweep.dir={sweep}"]
    assert run_cli(args, cwd=tmp_path).returncode == 0
    out = tmp_path / "cmp"
    proc = run_cli(["compare", str(tmp_path / "runs" / "beta*"), str(sweep), f"out={out}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert [r["run"] for r in rows] == ["beta0.1", "beta0.5", "sweep/0", "sweep/1"]
    assert [r["algorithm.beta"] for r in rows] == ["0.1", "0.5", "0.1", "0.1"]  # the settings that differ
    assert [r["algorithm.loss_type"] for r in rows] == ["sigmoid", "sigmoid", "sigmoid", "ipo"]
    assert "train.learning_rate" not in rows[0]  # the same in every run: left out
    assert all(r["status"] == "completed" and float(r["train_loss"]) > 0 for r in rows)
    assert "| run | algorithm.beta | algorithm.loss_type | status |" in proc.stdout
    png = out / "compare_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_a_path_that_holds_no_run_is_one_line_exit_2(tmp_path):
    proc = run_cli(["compare", str(tmp_path)], cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "is not a run directory" in proc.stderr
    proc = run_cli(["compare"], cwd=tmp_path)
    assert proc.returncode == 2 and "compare needs run directories" in proc.stderr
