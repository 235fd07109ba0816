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


def test_pass_at_k_counts_a_prompt_solved_when_any_of_its_answers_is_right(monkeypatch):
    from rlhf_lab.config.verbs import Sampling
    from rlhf_lab.inference import evaluate, infer

    rows = [{"prompt": [{"role": "user", "content": f"{i}+{i}?"}], "solution": str(2 * i)} for i in range(4)]

    def answers(loaded, prompts, batch, options):
        # Round 0 (seed 42): every answer wrong; round 1: right for the even rows; round 2: right for row 0.
        right = {42: set(), 43: {0, 2}, 44: {0}}[options.seed]
        return [r["solution"] if int(r["solution"]) // 2 in right else "7777" for r in batch]

    monkeypatch.setattr(infer, "generate", answers)
    result = evaluate.pass_at_k(None, rows, 3, Sampling(), batch_size=3)
    assert result["prompts"] == 4
    assert result["pass@3"] == 2 / 4  # rows 0 and 2
    assert result["pass@1_sampled"] == 3 / 12  # three right answers of twelve


def test_pass_k_on_the_cli_samples_the_held_out_prompts(tmp_path, tiny_model_dir):
    out = tmp_path / "p.json"
    args = ["model=tiny", "algorithm=grpo", "dataset=arith_math", "algorithm.max_completion_length=4"]
    args += ['dataset.val_path="pkg://rlhf_lab/demo_data/arith_math#6"', "pass_k=2", "max_new_tokens=4", f"out={out}"]
    proc = run_cli(["eval", *args], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())["pass_k"]
    assert result["k"] == 2 and result["prompts"] == 6 and 0 <= result["pass@2"] <= 1
    assert "pass@2" in proc.stdout
    pairs = tmp_path / "pairs.jsonl"  # held-out pairs without a solution column
    pairs.write_text(json.dumps({"prompt": "2+2?", "chosen": "4", "rejected": "5"}) + "\n")
    data = ["dataset=custom", f"dataset.path={pairs}", f"dataset.val_path={pairs}"]
    refused = run_cli(["eval", "model=tiny", *data, "pass_k=2", f"out={out}"], cwd=tmp_path)
    assert refused.returncode == 2 and "pass_k: needs held-out rows with a solution column" in refused.stderr
