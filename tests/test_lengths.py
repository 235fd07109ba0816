"""Rows over train.max_length are measured as TRL tokenizes them, counted, and cut, dropped or refused."""

import json
import logging

import pytest
from conftest import TINY, read_summary, run_cli

from rlhf_lab.config.dataset import DatasetConfig
from rlhf_lab.data.lengths import check_lengths, row_lengths
from rlhf_lab.data.load import load_splits

LOG = logging.getLogger("test")


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _file(tmp_path, answers):
    """Pairs whose chosen answer has the given number of words (each word one or more tokens)."""
    path = tmp_path / "d.jsonl"
    path.write_text(
        "".join(
            json.dumps({"prompt": f"Say {i}.", "chosen": " ".join(["yes"] * n), "rejected": "no"}) + "\n"
            for i, n in enumerate(answers)
        )
    )
    return path


def test_lengths_are_trls_tokenized_lengths(tmp_path, tokenizer):
    from trl.data_utils import _tokenize

    splits = load_splits(DatasetConfig(path=str(_file(tmp_path, [3, 40]))), "pairs", 0)
    for row in splits.train:
        longest, prompt = row_lengths(tokenizer, row, "pairs")
        sides = [len(_tokenize(tokenizer, row["prompt"] + row[s])["input_ids"]) for s in ("chosen", "rejected")]
        assert longest == max(sides)
        assert prompt == len(_tokenize(tokenizer, row["prompt"], add_generation_prompt=True)["input_ids"])
    kto = load_splits(DatasetConfig(path=str(_file(tmp_path, [3]))), "kto", 0).train[0]
    assert row_lengths(tokenizer, kto, "kto")[0] == len(
        _tokenize(tokenizer, kto["prompt"] + kto["completion"])["input_ids"]
    )


@pytest.mark.parametrize("policy,kept,dropped", [("right", 3, 1), ("delete", 2, 2)])
def test_right_cuts_and_counts_delete_drops_and_lists(tmp_path, tokenizer, policy, kept, dropped):
    splits = load_splits(DatasetConfig(path=str(_file(tmp_path, [2, 30, 3, 2]))), "pairs", 0)
    short = row_lengths(tokenizer, splits.train[0], "pairs")[0]
    prompt = row_lengths(tokenizer, splits.train[0], "pairs")[1]
    # Row 2 is over the limit; row 4's prompt alone is made to fill it.
    rows = list(splits.train)
    rows[3]["prompt"][0]["content"] = "Say " + "again " * 40
    from rlhf_lab.data.rows import Rows

    splits.train = Rows.of(rows)
    report = check_lengths(splits, tokenizer, "pairs", short + 2, policy, LOG)
    assert len(splits.train) == kept and report["train"]["over_max_length"] == 2
    assert report["train"]["longest_row"].endswith("d.jsonl:4") and report["train"]["longest"] > short + 2 > prompt
    assert [d.line for d in splits.dropped] == ([4] if policy == "right" else [2, 4])
    assert report["train"]["dropped"] == dropped


def test_online_prompts_are_counted_but_never_cut(tmp_path, tokenizer, caplog):
    path = tmp_path / "q.jsonl"
    path.write_text(
        json.dumps({"prompt": "What is " + "one plus " * 30 + "one?", "solution": "31"})
        + "\n"
        + json.dumps({"prompt": "What is 1 + 1?", "solution": "2"})
        + "\n"
    )
    splits = load_splits(DatasetConfig(path=str(path)), "prompts", 0)
    with caplog.at_level(logging.WARNING, logger="test"):
        report = check_lengths(splits, tokenizer, "prompts", 48, "right", LOG)
    assert len(splits.train) == 2 and report["train"]["over_max_length"] == 1
    assert "kept whole: online algorithms generate after the whole prompt" in caplog.text


def test_error_names_the_first_long_row_before_the_model_loads(tmp_path):
    data = _file(tmp_path, [2, 2, 60, 80])
    proc = run_cli(
        [
            *TINY,
            "dataset=custom",
            f"dataset.path={data}",
            "dataset.truncation=error",
            "train.max_length=48",
            f"hydra.run.dir={tmp_path}/run",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("data error")]
    assert len(errors) == 1 and f"{data}:3: the row is" in errors[0] and "over train.max_length=48" in errors[0]
    assert "model loaded" not in proc.stderr and "Traceback" not in proc.stderr


def test_the_run_reports_lengths_and_reward_models_drop_by_default(tmp_path):
    data = _file(tmp_path, [2, 2, 60, 2, 2, 2])
    proc = run_cli(
        [
            *TINY,
            "algorithm=rm",
            "dataset=custom",
            f"dataset.path={data}",
            "train.max_length=48",
            f"hydra.run.dir={tmp_path}/run",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    s = read_summary(tmp_path / "run")
    assert s["lengths"]["truncation"] == "delete" and s["lengths"]["train"]["over_max_length"] == 1
    assert s["train_rows"] == 5 and s["dropped_rows"] == 1
    listed = [json.loads(line) for line in (tmp_path / "run" / "dropped_rows.jsonl").read_text().splitlines()]
    assert [(d["path"], d["line"]) for d in listed] == [(str(data), 3)] and "over train.max_length=48" in listed[0][
        "message"
    ]
