"""A multirun sweep: every combination runs, failures are recorded, one summary for the sweep."""

import csv
import json

from conftest import TINY, run_cli


def test_sweep_summary_with_a_failing_job(tmp_path):
    proc = run_cli(
        [
            "-m",
            *TINY,
            "train.max_steps=1",
            "dataset.path=pkg://rlhf_lab/demo_data/arith_pairs,/no/such.jsonl",
            "algorithm.loss_type=sigmoid,ipo",
            f"hydra.sweep.dir={tmp_path}/sweep",
        ],
        cwd=tmp_path,
    )
    sweep = tmp_path / "sweep"
    # Two jobs read a file that is not there (a config error would stop the sweep before it starts): they fail, the
    # other two complete, and the command reports it.
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "2 of 4 jobs failed" in proc.stderr
    rows = list(csv.DictReader((sweep / "sweep_summary.csv").open()))
    assert len(rows) == 4
    by_combo = {(r["dataset.path"], r["algorithm.loss_type"]): r for r in rows}
    data, missing = r"pkg\://rlhf_lab/demo_data/arith_pairs", "/no/such.jsonl"  # as Hydra writes the override
    assert set(by_combo) == {(data, "sigmoid"), (data, "ipo"), (missing, "sigmoid"), (missing, "ipo")}
    for (path, _), r in by_combo.items():
        if path == missing:
            assert r["status"] == "failed" and "/no/such.jsonl: no such file" in r["error"]
        else:
            assert r["status"] == "completed" and float(r["eval_after.accuracy"]) >= 0
            assert float(r["train_loss"]) > 0
    # each job in its own directory with its own summary
    for r in rows:
        assert json.loads((sweep / r["job"] / "summary.json").read_text())["status"] == r["status"]
    table = (sweep / "sweep_summary.md").read_text()
    assert table.count("\n") == 2 + 4 and "| dataset.path | algorithm.loss_type | status |" in table
    png = sweep / "sweep_summary.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_sweep_over_algorithms_lands_in_one_table(tmp_path):
    proc = run_cli(
        # DPO's trainer and TRL's experimental ORPO trainer: the table's columns agree across different trainers.
        ["-m", *TINY, "train.max_steps=1", "algorithm=dpo,orpo", f"hydra.sweep.dir={tmp_path}/sweep"],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "sweep" / "sweep_summary.csv").open()))
    assert [r["algorithm"] for r in rows] == ["dpo", "orpo"]
    for r in rows:  # comparable columns for every algorithm
        assert r["status"] == "completed"
        assert 0 <= float(r["eval_after.accuracy"]) <= 1 and r["eval_after.logp_margin"] != ""
