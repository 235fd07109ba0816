"""GRPO and its recipes: config checks, dynamic sampling against hand-made batches, and runs on the tiny model."""

import csv
import math

import pytest
import torch
from conftest import ROOT, TINY, build_trainer, logged_metrics, read_summary, run_cli

from rlhf_lab.algorithms.grpo import dynamic_sampling as ds

TESTS = str(ROOT / "tests")
# Two answers per prompt, two prompts per step; a length reward so that answers of a group differ.
GRPO_TINY = [
    *TINY,
    "dataset=arith_math",
    "train.per_device_train_batch_size=4",
    "algorithm.num_generations=2",
    "algorithm.max_completion_length=8",
]
LENGTH_REWARD = "algorithm.reward_funcs=[accuracy,helpers.custom_rewards:Scaled]"


# ---- config-time checks (no model loads) ----


def _fails(args, tmp_path, *needles):
    proc = run_cli(args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = proc.stderr.strip().splitlines()[-1]
    for needle in needles:
        assert needle in line
    assert "Traceback" not in proc.stderr
    return line


def test_batch_must_be_a_multiple_of_num_generations(tmp_path):
    _fails(
        ["algorithm=grpo", "algorithm.num_generations=3"],
        tmp_path,
        "algorithm.num_generations",
        "4 x gradient_accumulation_steps 2 x 1 processes = 8",
        "multiple of num_generations (3)",
        "change train.per_device_train_batch_size",
    )


def test_cispo_needs_a_ratio_cap_above_one(tmp_path, compose):
    _fails(["algorithm=grpo", "algorithm.loss_type=cispo"], tmp_path, "algorithm.epsilon_high", "must be >= 1")
    _fails(["algorithm=cispo", "algorithm.epsilon_high=0.2"], tmp_path, "algorithm.epsilon_high", "got 0.2")
    assert compose(["algorithm=cispo"]).algorithm.epsilon_high == 5.0


def test_vllm_without_vllm_installed_fails_at_config_time(tmp_path):
    _fails(["algorithm=grpo", "algorithm.use_vllm=true"], tmp_path, "algorithm.use_vllm", "vllm is not installed")


def test_soft_overlong_needs_a_cache_below_the_length(tmp_path):
    _fails(
        ["algorithm=dapo", "algorithm.max_completion_length=64"],
        tmp_path,
        "algorithm.soft_cache_length",
        "must be below soft_max_length (64",
    )
    _fails(["algorithm=grpo", "algorithm.reward_funcs=[soft_overlong]"], tmp_path, "soft_cache_length", "needs it")


def test_a_reward_column_missing_from_the_data_is_a_data_error_before_loading(tmp_path):
    data = tmp_path / "q.jsonl"
    data.write_text(
        '{"messages": [{"role": "user", "content": "1+1?"}], "solution": "2"}\n'
        '{"messages": [{"role": "user", "content": "2+2?"}]}\n'
    )
    line = _fails(["algorithm=grpo", "model=tiny", f"dataset.path={data}"], tmp_path, "q.jsonl:2", "'solution'")
    assert "reward 'accuracy' reads it" in line


def test_recipes_set_their_settings(compose):
    dapo = compose(["algorithm=dapo"]).algorithm
    assert (dapo.loss_type, dapo.epsilon_high, dapo.beta) == ("dapo", 0.28, 0.0)
    assert dapo.overlong_filter and dapo.dynamic_sample and "soft_overlong" in dapo.reward_funcs
    sapo = compose(["algorithm=sapo"]).algorithm
    assert (sapo.loss_type, sapo.sapo_temperature_pos, sapo.sapo_temperature_neg) == ("sapo", 1.0, 1.05)


# ---- dynamic sampling on hand-made batches ----


def test_informative_groups_are_the_ones_with_unequal_rewards():
    rewards = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.3, 0.3, float("nan"), 2.0, float("nan"), float("nan")])
    assert ds.informative_groups(rewards, 2).tolist() == [False, True, False, False, False]
    # 0.1 * 3 / 3 style round-off does not count as a difference
    assert ds.informative_groups(torch.tensor([0.1 + 0.2, 0.3]), 2).tolist() == [False]


def _batch(groups, prompt_width, completion_width, pad=0, tag=0):
    """groups x 2 answers; each row's ids hold (tag, row) so the rows can be followed."""
    rows = 2 * groups
    ids = torch.arange(rows).unsqueeze(1) + 100 * tag
    return {
        "prompt_ids": ids.repeat(1, prompt_width),
        "prompt_mask": torch.ones(rows, prompt_width, dtype=torch.long),
        "completion_ids": ids.repeat(1, completion_width),
        "completion_mask": torch.ones(rows, completion_width, dtype=torch.long),
        "ref_per_token_logps": torch.full((rows, completion_width), -1.0),
        "advantages": torch.arange(rows, dtype=torch.float) + 10 * tag,
        "num_items_in_batch": torch.tensor(rows * completion_width),
    }


def test_fill_batch_keeps_informative_groups_and_pads_both_sides():
    first = _batch(3, prompt_width=2, completion_width=3, tag=0)
    second = _batch(3, prompt_width=4, completion_width=2, tag=1)
    masks = [torch.tensor([False, True, False]), torch.tensor([True, True, False])]
    out, stats = ds.fill_batch([first, second], masks, num_generations=2, size=6, pad_token_id=-7)
    # groups kept: group 1 of the first round (rows 2, 3), groups 0 and 1 of the second (rows 0-3)
    assert out["advantages"].tolist() == [2, 3, 10, 11, 12, 13]
    # prompts are left-padded to the widest (4), completions right-padded to the widest (3)
    assert out["prompt_ids"][0].tolist() == [-7, -7, 2, 2] and out["prompt_mask"][0].tolist() == [0, 0, 1, 1]
    assert out["prompt_ids"][2].tolist() == [100] * 4
    assert out["completion_ids"][2].tolist() == [100, 100, -7] and out["completion_mask"][2].tolist() == [1, 1, 0]
    assert out["ref_per_token_logps"][2].tolist() == [-1.0, -1.0, 0.0]
    assert stats == {"dropped_groups": 2, "refilled_groups": 2, "uninformative_kept": 0, "rounds": 2}


def test_fill_batch_tops_up_with_uninformative_groups_when_refills_run_out():
    first = _batch(3, 2, 2, tag=0)
    masks = [torch.tensor([False, True, False])]
    out, stats = ds.fill_batch([first], masks, num_generations=2, size=6, pad_token_id=0)
    assert out["advantages"].tolist() == [0, 1, 2, 3, 4, 5]  # batch size kept, order kept
    assert stats == {"dropped_groups": 2, "refilled_groups": 0, "uninformative_kept": 2, "rounds": 1}


# ---- runs on the tiny model ----


@pytest.fixture(scope="module")
def recipe_sweep(tmp_path_factory, tiny_model_dir):
    """grpo, dapo, sapo and cispo in one multirun (one process): each trains two steps."""
    tmp = tmp_path_factory.mktemp("recipes")
    proc = run_cli(
        [
            "-m",
            *GRPO_TINY,
            LENGTH_REWARD,
            "algorithm=grpo,dapo,sapo,cispo",
            "algorithm.soft_cache_length=4",
            f"hydra.sweep.dir={tmp}/sweep",
        ],
        cwd=tmp,
        env={"PYTHONPATH": TESTS},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp / "sweep"


def test_each_recipe_trains_with_its_loss(recipe_sweep):
    by_loss = {}
    for job in sorted(p for p in recipe_sweep.iterdir() if p.is_dir() and p.name.isdigit()):
        s = read_summary(job)
        assert s["status"] == "completed" and s["global_steps"] == 2 and math.isfinite(s["train_loss"])
        keys = logged_metrics(job)
        assert {"rewards/accuracy/mean", "rewards/Scaled/mean", "zero_variance_fraction", "entropy"} <= keys
        assert len(s["zero_variance_fraction_per_round"]) == 2
        for phase in ("eval_before", "eval_after"):  # greedy answers to the 48 held-out prompts, scored
            assert s[phase]["reward/accuracy"] == 0.0 and s[phase]["completion_length"] <= 8
            assert s[phase]["reward/Scaled"] > 0 and s[phase]["reward"] == pytest.approx(s[phase]["reward/Scaled"])
        by_loss[next(o for o in s["overrides"] if o.startswith("algorithm="))] = s
    assert set(by_loss) == {"algorithm=grpo", "algorithm=dapo", "algorithm=sapo", "algorithm=cispo"}
    assert "dynamic_sampling" in by_loss["algorithm=dapo"]
    with (recipe_sweep / "sweep_summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["algorithm"] for r in rows] == ["grpo", "dapo", "sapo", "cispo"]
    assert all(r["status"] == "completed" and math.isfinite(float(r["train_loss"])) for r in rows)


@pytest.mark.parametrize(
    "recipe, expected",
    [
        ("dapo", dict(loss_type="dapo", epsilon_high=0.28, beta=0.0, mask_truncated_completions=True)),
        ("sapo", dict(loss_type="sapo", sapo_temperature_pos=1.0, sapo_temperature_neg=1.05, beta=0.04)),
        ("cispo", dict(loss_type="cispo", epsilon_high=5.0, epsilon=0.2)),
        ("grpo", dict(loss_type="grpo", scale_rewards="group", importance_sampling_level="token", temperature=0.9)),
    ],
)
def test_settings_reach_trl(compose, tmp_path, tiny_model_dir, recipe, expected):
    trainer = build_trainer(compose, tmp_path, [*GRPO_TINY, f"algorithm={recipe}", "algorithm.soft_cache_length=4"])
    for key, value in expected.items():
        assert getattr(trainer.args, key) == value, key
    assert trainer.dynamic_sample == (recipe == "dapo")
    assert trainer.reward_func_names[0] == "accuracy"


def test_dynamic_sampling_drops_and_refills_groups(tmp_path, tiny_model_dir):
    # Even-solution prompts always score 0 (their groups carry no signal); odd ones vary with the answer.
    proc = run_cli(
        [
            *GRPO_TINY,
            "algorithm=grpo",
            "algorithm.reward_funcs=[helpers.custom_rewards.solution_is_odd_then_length_parity]",
            "algorithm.dynamic_sample=true",
            "train.max_steps=3",
            f"hydra.run.dir={tmp_path}/run",
        ],
        cwd=tmp_path,
        env={"PYTHONPATH": TESTS},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = read_summary(tmp_path / "run")
    counts = s["dynamic_sampling"]
    assert counts["dropped_groups"] > 0 and counts["refilled_groups"] > 0
    # every dropped group was replaced, by a refilled group or (refills exhausted) an uninformative one
    assert counts["refilled_groups"] + counts["uninformative_kept"] == counts["dropped_groups"]
    assert counts["rounds"] >= 3 + 1
    logged = logged_metrics(tmp_path / "run")
    assert {"dynamic_sampling/dropped_groups", "dynamic_sampling/refilled_groups"} <= logged


def test_zero_variance_is_logged_and_warned(tmp_path, tiny_model_dir):
    # The random tiny model never solves a problem: accuracy is 0 for every answer, every step.
    proc = run_cli(
        [
            *GRPO_TINY,
            "algorithm=grpo",
            "algorithm.reward_funcs=[accuracy]",
            "train.max_steps=3",
            f"hydra.run.dir={tmp_path}/run",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = read_summary(tmp_path / "run")
    assert s["zero_variance_fraction_per_round"] == [1.0, 1.0, 1.0]
    assert "training is learning nothing" in proc.stdout + proc.stderr  # Hydra logs to stdout


def test_a_failing_reward_stops_the_run_naming_reward_and_row(tmp_path, tiny_model_dir):
    data = tmp_path / "q.jsonl"
    solutions = [5, 7, 9, 7]
    data.write_text(
        "".join(
            f'{{"messages": [{{"role": "user", "content": "q{i}"}}], "solution": "{s}"}}\n'
            for i, s in enumerate(solutions)
        )
    )
    proc = run_cli(
        [
            *GRPO_TINY,
            "algorithm=grpo",
            f"dataset.path={data}",
            "dataset.val_path=null",
            "algorithm.reward_funcs=[helpers.custom_rewards.breaks_on_seven]",
            f"hydra.run.dir={tmp_path}/run",
        ],
        cwd=tmp_path,
        env={"PYTHONPATH": TESTS},
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    # the error is one line (progress bars may still be drawn after it)
    line = next(x for x in proc.stderr.splitlines() if x.startswith("reward error:"))
    assert line.startswith("reward error: reward 'breaks_on_seven' raised ZeroDivisionError")
    assert "q.jsonl:2" in line or "q.jsonl:4" in line
    s = read_summary(tmp_path / "run")
    assert s["status"] == "failed" and "breaks_on_seven" in s["error"]


def test_loss_type_and_beta_sweep_lands_in_the_summary(tmp_path, tiny_model_dir):
    proc = run_cli(
        [
            "-m",
            *GRPO_TINY,
            "algorithm=grpo",
            LENGTH_REWARD,
            "dataset.val_path=null",
            "algorithm.loss_type=grpo,dr_grpo",
            "algorithm.beta=0.0,0.04",
            f"hydra.sweep.dir={tmp_path}/sweep",
        ],
        cwd=tmp_path,
        env={"PYTHONPATH": TESTS},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with (tmp_path / "sweep" / "sweep_summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["algorithm.loss_type"], r["algorithm.beta"]) for r in rows] == [
        ("grpo", "0.0"),
        ("grpo", "0.04"),
        ("dr_grpo", "0.0"),
        ("dr_grpo", "0.04"),
    ]
    for row in rows:
        assert row["status"] == "completed"
        logged = logged_metrics(tmp_path / "sweep" / row["job"])
        # beta 0 drops the reference model: no KL term is computed or logged
        assert ("kl" in logged) == (row["algorithm.beta"] != "0.0")


def test_a_trained_reward_model_scores_as_one_more_reward(tmp_path, tiny_model_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    rm_dir = tmp_path / "rm"
    AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1).save_pretrained(rm_dir)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(rm_dir)
    proc = run_cli(
        [
            *GRPO_TINY,
            "algorithm=grpo",
            "algorithm.reward_funcs=[format]",
            f"algorithm.reward_model={rm_dir}",
            "algorithm.reward_weights=[1.0,2.0]",
            f"hydra.run.dir={tmp_path}/run",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = read_summary(tmp_path / "run")
    after = s["eval_after"]
    assert after["reward/format"] == 0.0 and after["reward/rm"] != 0.0
    assert after["reward"] == pytest.approx(2.0 * after["reward/rm"], rel=1e-5)  # weighted total
    logged = logged_metrics(tmp_path / "run")
    assert {"rewards/rm/mean", "rewards/format/mean"} <= logged


def test_a_missing_reward_model_is_a_config_error(tmp_path):
    _fails(["algorithm=grpo", "algorithm.reward_model=/nowhere/rm"], tmp_path, "algorithm.reward_model")
