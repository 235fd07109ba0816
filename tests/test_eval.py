"""eval: the held-out evaluation of a run, or of any model, by the code path training scores with."""

import json
import math

import pytest
from conftest import TINY, read_summary, run_cli

TRAINED = [*TINY, "train.learning_rate=5e-2"]
ONLINE = ["algorithm.max_completion_length=6", "algorithm.reward_funcs=[accuracy]"]
CASES = {
    "dpo": [],
    "kto": ["algorithm=kto"],
    "rm": ["algorithm=rm"],
    "full": ["tuner=full", "train.learning_rate=1e-3"],
    "grpo": ["algorithm=grpo", "dataset=arith_math", "algorithm.num_generations=2", *ONLINE],
    "ppo": ["algorithm=ppo", "dataset=arith_math", *ONLINE],
    "gkd": ["algorithm=gkd", "dataset=arith_chat", "algorithm.teacher_model=tiny", "algorithm.lmbda=0"],
    "vl": ["model=tiny_vl", "dataset=shapes"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir, train):
    root = tmp_path_factory.mktemp("eval")
    done = {}
    for name, extra in CASES.items():
        assert train([*TRAINED, *extra], root / name)["status"] == "completed"
        done[name] = root / name
    return done


def _close(got: dict, want: dict, rel=1e-4, abs_=1e-5, accuracy=0.0) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        if key == "accuracy" and accuracy:
            assert abs(got[key] - value) <= accuracy, key
        elif isinstance(value, float) and not math.isnan(value):
            assert got[key] == pytest.approx(value, rel=rel, abs=abs_), key
        else:
            assert got[key] == value, key


@pytest.mark.parametrize("name", list(CASES))
def test_a_runs_evaluation_is_its_summarys_before_and_after(runs, name):
    run = runs[name]
    proc = run_cli(["eval", f"model={run}"], cwd=run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"written to {run / 'eval.json'}" in proc.stdout
    assert all(key in proc.stdout for key in read_summary(run)["eval_after"])  # the printed table
    result, summary = json.loads((run / "eval.json").read_text()), read_summary(run)
    assert result["val_rows"] == summary["val_rows"] and result["algorithm"] == summary["algorithm"]
    _close(result["eval_before"], summary["eval_before"])
    if name == "rm":
        # A reward model is saved merged (W + BA in one matrix), which rounds differently under bf16 autocast from
        # the unmerged model the run scored; the tiny model's near-tied scores then flip a few pairs.
        _close(result["eval_after"], summary["eval_after"], rel=1e-3, abs_=1e-3, accuracy=0.1)
    else:
        _close(result["eval_after"], summary["eval_after"])


def test_a_model_is_scored_as_a_run_scores_it_before_training(runs, tmp_path, tiny_model_dir):
    out = tmp_path / "base.json"
    proc = run_cli(
        ["eval", "model=tiny", f"out={out}", 'dataset.val_path="pkg://rlhf_lab/demo_data/arith_pairs#16"'], cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["val_rows"] == 16 and result["algorithm"] == "dpo"
    assert result["eval"]["reward_margin"] == 0.0  # its own reference
    assert 0 <= result["eval"]["accuracy"] <= 1


def test_an_exported_run_scores_as_the_run_did(runs, tmp_path):
    run = runs["dpo"]
    assert run_cli(["export", f"run={run}", f"out={tmp_path / 'merged'}"], cwd=tmp_path).returncode == 0
    out = tmp_path / "merged.json"
    proc = run_cli(["eval", f"model={tmp_path / 'merged'}", f"out={out}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = read_summary(run)["eval_after"]
    got = json.loads(out.read_text())["eval"]
    assert got["logp_chosen"] == pytest.approx(after["logp_chosen"], rel=2e-3)
    assert got["logp_margin"] == pytest.approx(after["logp_margin"], rel=2e-2, abs=2e-2)


@pytest.mark.parametrize(
    "args,expected",
    [
        ([], "config error: model: is required"),
        (["model=/nowhere/ckpt"], "config error: model: /nowhere/ckpt does not exist"),
        (["model=RUN", "algorithm.beta=0.3"], "config error: algorithm.beta: cannot change a trained run's settings"),
        (["model=tiny", "algorithm.beta=-1"], "algorithm.beta: must be > 0"),
    ],
    ids=["no-model", "missing-path", "run-setting", "bad-value"],
)
def test_bad_input_is_one_line_exit_2(runs, tmp_path, args, expected):
    args = [a.replace("RUN", str(runs["dpo"])) for a in args]
    proc = run_cli(["eval", *args], cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and expected in proc.stderr, proc.stderr
