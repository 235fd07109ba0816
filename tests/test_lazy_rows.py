"""Rows tokenized per batch give the trainers exactly the batches that up-front tokenization gives."""

import inspect
import json
import logging

import pytest
import torch
from conftest import TINY

from rlhf_lab.algorithms.lazy_rows import LazyPlan
from rlhf_lab.data.lengths import LengthCheck
from rlhf_lab.data.load import load_splits
from rlhf_lab.errors import ConfigError, DataError

SMALL = [
    "model=tiny",
    "train.per_device_train_batch_size=2",
    "train.gradient_accumulation_steps=1",
    "dataset.max_samples=12",
    "train.max_length=64",
]
CASES = {
    "dpo": [],
    "kto": ["algorithm=kto"],
    "rm": ["algorithm=rm"],
    "grpo": [
        "algorithm=grpo",
        "dataset=arith_math",
        "algorithm.num_generations=2",
        "algorithm.max_completion_length=4",
    ],
    "gkd": ["algorithm=gkd", "algorithm.teacher_model=tiny", "dataset=arith_chat", "algorithm.max_completion_length=4"],
}


def _trainer(compose, tmp_path, overrides, lazy: bool):
    from rlhf_lab.config.run import build_run
    from rlhf_lab.training.pipeline import build_trainer, lazy_plan, load_inputs, load_processing

    run = build_run(compose([*SMALL, *overrides, f"dataset.lazy_tokenize={str(lazy).lower()}"]), tmp_path)
    splits = load_splits(run.dataset, run.spec.data_format, run.train.seed)
    processing = load_processing(run)
    inputs = load_inputs(run, splits, False, processing)
    inputs.lazy = lazy_plan(run, splits, processing[1], "right")
    assert (inputs.lazy is not None) == lazy
    return build_trainer(run, inputs)


def _same(a, b):
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("algorithm", list(CASES))
def test_per_batch_rows_make_the_same_batches(compose, tmp_path, tiny_model_dir, algorithm):
    batches = {}
    for lazy in (False, True):
        trainer = _trainer(compose, tmp_path / str(lazy), CASES[algorithm], lazy)
        loader = trainer.get_train_dataloader()
        batches[lazy] = [batch for _, batch in zip(range(3), loader)]
        if lazy:
            assert len(trainer.train_dataset.column_names) == 1  # indices only: nothing was tokenized up front
    assert len(batches[True]) == 3 and _same(batches[False], batches[True])
    if algorithm == "grpo":  # decoded rows, the reward columns included
        rows = batches[True][0]
        assert isinstance(rows[0]["prompt"], list) and "solution" in rows[0]


def test_ppo_draws_rows_through_the_plan(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    from rlhf_lab.algorithms.ppo.trainer import PromptStream
    from rlhf_lab.config.dataset import DatasetConfig

    rows = load_splits(DatasetConfig(path="pkg://rlhf_lab/demo_data/arith_math"), "prompts", 0).train
    check = LengthCheck(AutoTokenizer.from_pretrained(tiny_model_dir), "prompts", 512, "right")
    plan = LazyPlan(rows, check, seed=0)
    eager, lazy = PromptStream(rows, 4, seed=1), PromptStream(rows, 4, seed=1, row_at=plan.draw)
    assert [eager.next_batch() for _ in range(3)] == [lazy.next_batch() for _ in range(3)] and check.measured == 12


def test_rows_over_the_limit_are_replaced_or_refused_when_drawn(tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    from rlhf_lab.config.dataset import DatasetConfig

    path = tmp_path / "d.jsonl"
    path.write_text(
        "".join(
            json.dumps({"prompt": f"Say {i}.", "chosen": "yes " * (60 if i % 2 else 1), "rejected": "no"}) + "\n"
            for i in range(6)
        )
    )
    rows = load_splits(DatasetConfig(path=str(path)), "pairs", 0).train
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    plan = LazyPlan(rows, LengthCheck(tokenizer, "pairs", 64, "delete"), seed=0)
    drawn = [plan.draw(i) for i in range(6)]
    assert all(len(r["chosen"][0]["content"]) < 10 for r in drawn)  # every long row was replaced by a short one
    # Each long row was dropped when drawn (a replacement drawn long is dropped again, so lines may repeat).
    assert {d.line for d in plan.lengths.dropped} == {2, 4, 6} and plan.lengths.over == len(plan.lengths.dropped)
    refuse = LazyPlan(rows, LengthCheck(tokenizer, "pairs", 64, "error"), seed=0)
    refuse.draw(0)
    with pytest.raises(DataError, match=r"d.jsonl:2: the row is \d+ tokens, over train.max_length=64"):
        refuse.draw(1)


def test_auto_reads_large_datasets_per_batch(compose, tmp_path, tiny_model_dir, caplog, monkeypatch):
    from rlhf_lab import config as schema
    from rlhf_lab.config.run import build_run
    from rlhf_lab.training.pipeline import lazy_plan

    monkeypatch.setattr(schema.dataset, "LAZY_ROWS", 100)
    for overrides, lazy in (([], True), (["dataset.max_samples=100"], False), (["algorithm=orpo"], False)):
        run = build_run(compose(["model=tiny", *overrides]), tmp_path)
        splits = load_splits(run.dataset, run.spec.data_format, 0)
        with caplog.at_level(logging.INFO, logger="rlhf_lab"):
            assert (lazy_plan(run, splits, None, "right") is not None) == lazy, overrides
    assert "TRL's ORPO trainer tokenizes every row when it is built" in caplog.text


@pytest.mark.parametrize(
    "overrides,fragment",
    [
        (["algorithm=cpo"], "TRL's CPO trainer tokenizes every row"),
        (["algorithm.precompute_ref_log_probs=true"], "precompute_ref_log_probs=true reads every tokenized row"),
    ],
)
def test_lazy_tokenize_true_where_it_cannot_apply_is_a_config_error(compose, tmp_path, overrides, fragment):
    from rlhf_lab.config.run import build_run

    with pytest.raises(ConfigError, match=fragment) as err:
        build_run(compose([*TINY, *overrides, "dataset.lazy_tokenize=true"]), tmp_path)
    assert err.value.key == "dataset.lazy_tokenize"


def test_trl_private_surface_prepare_dataset():
    """lazy_rows.per_batch overrides and calls TRL's _prepare_dataset(dataset, processing_class, args, dataset_name)."""
    from trl import DPOTrainer, KTOTrainer, RewardTrainer

    for trainer in (DPOTrainer, KTOTrainer, RewardTrainer):
        params = list(inspect.signature(trainer._prepare_dataset).parameters)
        assert params == ["self", "dataset", "processing_class", "args", "dataset_name"], (trainer.__name__, params)
