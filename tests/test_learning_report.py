"""scripts/learning_report.py: its table's figures are the runs' own, a finished run is read again rather than rerun,
and a row counts as learned only when every seed's change beats the spread across seeds."""

import json

import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def report():
    return load_script("learning_report")


def _run(seed, before, after, lower=False):
    return {
        "recipe": "x_demo",
        "seed": seed,
        "before": before,
        "after": after,
        "change": after - before,
        "lower_is_better": lower,
    }


def test_every_recipe_is_listed_and_ppo_runs_after_the_reward_model(report):
    names = report.all_recipes()
    assert len(names) == 13 and "dpo_demo" in names and "gkd_demo" in names and "grpo_tools_demo" in names
    assert names.index("ppo_demo") == names.index("rm_demo") + 1


def test_noise_is_the_spread_of_the_after_metric_across_seeds(report):
    row = report.verdict([_run(42, 0.60, 0.70), _run(2, 0.60, 0.66)])
    assert row["noise"] == pytest.approx(0.04) and row["smallest_gain"] == pytest.approx(0.06)
    assert row["learned"]
    # A change smaller than the spread is not evidence.
    row = report.verdict([_run(42, 0.60, 0.70), _run(2, 0.60, 0.62)])
    assert row["noise"] == pytest.approx(0.08) and not row["learned"]
    # Lower is better for a divergence: a fall is the gain.
    assert report.verdict([_run(42, 2.0, 1.5, lower=True)])["learned"]
    assert not report.verdict([_run(42, 2.0, 2.5, lower=True)])["learned"]
    # A failed seed fails the row.
    failed = {"recipe": "x_demo", "seed": 2, "status": "failed (exit 1)"}
    assert not report.verdict([_run(42, 0.6, 0.7), failed])["learned"]


def test_the_held_out_metric_comes_from_the_registry(report):
    summary = {"algorithm": "gkd", "eval_before": {"divergence": 0.9}, "eval_after": {"divergence": 0.7}}
    assert report.held_out(summary) == ("divergence", 0.9, 0.7, True)
    grpo = {
        "algorithm": "grpo",
        "eval_before": {"reward": 1.0, "reward/accuracy": 0.4},
        "eval_after": {"reward": 1.2, "reward/accuracy": 0.5},
    }
    assert report.held_out(grpo) == ("reward/accuracy", 0.4, 0.5, False)


def test_a_report_on_the_tiny_model(report, tmp_path, capsys):
    args = ["dpo_demo", "--set", "debug=smoke", "--out", str(tmp_path)]
    assert report.main(args) in (0, 1)
    rows = json.loads((tmp_path / "learning_report.json").read_text())
    run = rows[0]["runs"][0]
    summary = json.loads((tmp_path / "runs" / "dpo_demo-seed42" / "summary.json").read_text())
    assert run["before"] == summary["eval_before"]["accuracy"] and run["after"] == summary["eval_after"]["accuracy"]
    assert run["seconds_per_step"] == summary["seconds_per_step"] and run["steps"] == 2
    recorded = json.loads((tmp_path / "walls.json").read_text())["dpo_demo-seed42"]
    wall = recorded["wall_s"]
    assert recorded["started_at"] == summary["started_at"]
    assert run["wall_s"] == wall > summary["duration_s"]  # the command's wall time includes the process start-up
    table = (tmp_path / "learning_report.md").read_text()
    moved = f"{run['before']:.3f} -> {run['after']:.3f} (seed 42)"
    assert f"| dpo_demo | dpo | accuracy (higher is better) | {moved}" in table

    # A run finished earlier (here a hand-written one of another recipe) joins the table; the finished dpo_demo
    # run is read again, not rerun.
    other = tmp_path / "runs" / "gkd_demo-seed7"
    other.mkdir()
    gkd = {
        "status": "completed",
        "algorithm": "gkd",
        "eval_before": {"divergence": 0.5},
        "eval_after": {"divergence": 0.3},
        "global_steps": 30,
        "seconds_per_step": 4.0,
        "duration_s": 150.0,
    }
    (other / "summary.json").write_text(json.dumps(gkd))
    capsys.readouterr()
    report.main(args)
    assert "$ -m rlhf_lab" not in capsys.readouterr().out
    rows = json.loads((tmp_path / "learning_report.json").read_text())
    assert [r["recipe"] for r in rows] == ["dpo_demo", "gkd_demo"]
    assert rows[0]["runs"][0]["wall_s"] == wall
    assert rows[1]["runs"][0]["change"] == pytest.approx(-0.2) and rows[1]["learned"]
    assert rows[1]["runs"][0]["wall_s"] == 150.0 and rows[1]["seeds"] == [7]
    assert (
        "| gkd_demo | gkd | divergence (lower is better) | 0.500 -> 0.300 (seed 7) | one seed | yes | 4.00 |"
        in (tmp_path / "learning_report.md").read_text()
    )
    # A wall time recorded for an earlier run in the same folder is not taken for a later one.
    gkd["started_at"] = 5.0
    (other / "summary.json").write_text(json.dumps(gkd))
    (tmp_path / "walls.json").write_text(json.dumps({"gkd_demo-seed7": {"started_at": 4.0, "wall_s": 999.0}}))
    report.main(args)
    assert json.loads((tmp_path / "learning_report.json").read_text())[1]["runs"][0]["wall_s"] == 150.0


def test_an_unknown_recipe_is_one_line_and_exit_2(report, tmp_path, capsys):
    assert report.main(["dpo_demoo", "--out", str(tmp_path)]) == 2
    assert "no recipe dpo_demoo" in capsys.readouterr().err


def test_an_out_folder_that_cannot_be_made_is_one_line_and_exit_2(report, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert report.main(["dpo_demo", "--out", str(tmp_path / "file" / "report")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot create the report folder" in err and "Traceback" not in err
