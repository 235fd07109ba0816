"""Every input format, file type and source kind reads into the same training rows; bad rows name their place."""

import csv
import json
import time

import pytest
from conftest import run_cli
from helpers.data_files import write_jsonl, write_kind

from rlhf_lab.config.dataset import DatasetConfig
from rlhf_lab.data.load import load_file, load_splits
from rlhf_lab.errors import ConfigError, DataError

SYSTEM, Q, A, B = "Be brief.", "What is 2 + 2?", "4", "5"
PROMPT = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": Q}]
USER_ONLY = [{"role": "user", "content": Q}]
CHOSEN = [{"role": "assistant", "content": A}]
REJECTED = [{"role": "assistant", "content": B}]
HISTORY = [["What is 1 + 1?", "2"]]
HISTORY_TURNS = [{"role": "user", "content": "What is 1 + 1?"}, {"role": "assistant", "content": "2"}]

# format -> (one row, the pairs row it must become). Every row also carries solution="4", kept as a column.
PAIR_ROWS = {
    "messages": ({"messages": [*PROMPT, *CHOSEN], "rejected_response": B}, PROMPT),
    "messages+rejected_messages": ({"messages": [*PROMPT, *CHOSEN], "rejected_messages": [*PROMPT, *REJECTED]}, PROMPT),
    "messages+system column": ({"system": SYSTEM, "messages": [*USER_ONLY, *CHOSEN], "rejected_response": B}, PROMPT),
    "sharegpt": (
        {
            "system": SYSTEM,
            "conversations": [{"from": "human", "value": Q}, {"from": "gpt", "value": A}],
            "rejected_response": B,
        },
        PROMPT,
    ),
    "alpaca": (
        {"system": SYSTEM, "instruction": "What is", "input": "2 + 2?", "output": A, "rejected_response": B},
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "What is\n2 + 2?"}],
    ),
    "alpaca+history": (
        {"instruction": Q, "output": A, "history": HISTORY, "rejected_response": B},
        [*HISTORY_TURNS, *USER_ONLY],
    ),
    "query_response": (
        {"query": Q, "response": A, "history": HISTORY, "system": SYSTEM, "rejected_response": B},
        [{"role": "system", "content": SYSTEM}, *HISTORY_TURNS, *USER_ONLY],
    ),
    "trl standard": ({"prompt": Q, "chosen": A, "rejected": B}, USER_ONLY),
    "trl conversational": ({"prompt": PROMPT, "chosen": CHOSEN, "rejected": REJECTED}, PROMPT),
    "trl implicit prompt": ({"chosen": [*PROMPT, *CHOSEN], "rejected": [*PROMPT, *REJECTED]}, PROMPT),
    "ultrafeedback": (
        {
            "prompt": Q,
            "prompt_id": "x1",
            "chosen": [*USER_ONLY, *CHOSEN],
            "rejected": [*USER_ONLY, *REJECTED],
            "messages": [*USER_ONLY, *CHOSEN],
            "score_chosen": 8.0,
            "score_rejected": 3.0,
        },
        USER_ONLY,
    ),
    "hh_rlhf": (
        {
            "chosen": f"\n\nHuman: What is 1 + 1?\n\nAssistant: 2\n\nHuman: {Q}\n\nAssistant: {A}",
            "rejected": f"\n\nHuman: What is 1 + 1?\n\nAssistant: 2\n\nHuman: {Q}\n\nAssistant: {B}",
        },
        [*HISTORY_TURNS, *USER_ONLY],
    ),
}
DETECTED = {
    "messages+rejected_messages": "messages",
    "messages+system column": "messages",
    "alpaca+history": "alpaca",
    "trl standard": "trl",
    "trl conversational": "trl",
    "trl implicit prompt": "trl",
    "ultrafeedback": "trl",
    "query_response": "query_response",
}


def content(rows):
    return [{k: v for k, v in r.items() if k != "row_source"} for r in rows]


@pytest.mark.parametrize("name", list(PAIR_ROWS))
def test_each_format_becomes_the_same_pair_and_kto_rows(tmp_path, name):
    row, prompt = PAIR_ROWS[name]
    path = write_jsonl(tmp_path / "d.jsonl", [{**row, "solution": "4"}])
    splits = load_splits(DatasetConfig(path=str(path)), "pairs", seed=0)
    extras = {k: row[k] for k in ("prompt_id", "messages", "score_chosen", "score_rejected") if name == "ultrafeedback"}
    assert content(splits.train) == [
        {**extras, "solution": "4", "prompt": prompt, "chosen": CHOSEN, "rejected": REJECTED}
    ]
    assert splits.sources[0]["format"] == DETECTED.get(name, name)
    kto = load_file(path, "kto", False, [])
    assert [(r["prompt"], r["completion"], r["label"]) for r in kto] == [
        (prompt, CHOSEN, True),
        (prompt, REJECTED, False),
    ]
    assert [r["prompt"] for r in load_file(path, "prompts", False, [])] == [prompt]
    assert [r["messages"] for r in load_file(path, "sft", False, [])] == [[*prompt, *CHOSEN]]


@pytest.mark.parametrize(
    "row,fmt,expected",
    [
        (
            {"prompt": Q, "completion": A, "label": False},
            "kto",
            {"prompt": USER_ONLY, "completion": CHOSEN, "label": False},
        ),
        (
            {"prompt": PROMPT, "completion": CHOSEN, "label": True},
            "kto",
            {"prompt": PROMPT, "completion": CHOSEN, "label": True},
        ),
        (
            {"messages": [*PROMPT, *CHOSEN], "label": "false"},
            "kto",
            {"prompt": PROMPT, "completion": CHOSEN, "label": False},
        ),
        ({"query": Q, "response": A, "label": 1}, "kto", {"prompt": USER_ONLY, "completion": CHOSEN, "label": True}),
        ({"prompt": Q, "solution": "4"}, "prompts", {"prompt": USER_ONLY, "solution": "4"}),
        ({"prompt": PROMPT}, "prompts", {"prompt": PROMPT}),
        ({"question": Q}, "prompts", None),
        ({"prompt": Q, "completion": A}, "sft", {"messages": [*USER_ONLY, *CHOSEN], "has_answer": True}),
        ({"instruction": Q, "input": "", "output": A}, "sft", {"messages": [*USER_ONLY, *CHOSEN], "has_answer": True}),
        (
            {"conversations": [{"from": "system", "value": SYSTEM}, {"from": "human", "value": Q}]},
            "sft",
            {"messages": [*PROMPT, {"role": "assistant", "content": ""}], "has_answer": False},
        ),
    ],
)
def test_unpaired_prompt_only_and_sft_rows(tmp_path, row, fmt, expected):
    path = write_jsonl(tmp_path / "d.jsonl", [row])
    if expected is None:  # no column tells the format: one line listing what is read, and the way out
        with pytest.raises(DataError, match="dataset.columns"):
            load_file(path, fmt, False, [])
        return
    assert content(load_file(path, fmt, False, [])) == [expected]


def test_columns_rename_before_detection_and_gsm8k_solution_scores(tmp_path):
    from rlhf_lab.rewards.builtin import Accuracy

    answer = "She sold 48/2 = <<48/2=24>>24 clips in May.\nIn all 48+24 = <<48+24=72>>72 clips.\n#### 72"
    path = write_jsonl(tmp_path / "g.jsonl", [{"question": "How many clips?", "answer": answer}])
    cfg = DatasetConfig(path=str(path), columns={"question": "prompt", "answer": "solution"})
    row = load_splits(cfg, "prompts", 0).train[0]
    assert row["prompt"] == [{"role": "user", "content": "How many clips?"}] and row["solution"] == answer
    # The worked answer also holds 24 and 48: the number after #### is the one that counts.
    assert Accuracy()(["The answer is 72.", "The answer is 24."], solution=[answer, answer]) == [1.0, 0.0]


def test_a_column_rename_that_matches_nothing_or_collides_is_an_error(tmp_path):
    path = write_jsonl(tmp_path / "g.jsonl", [{"question": Q, "prompt": "x"}])
    with pytest.raises(ConfigError, match="no source has a column 'questoin'"):
        load_splits(DatasetConfig(path=str(path), columns={"questoin": "prompt"}), "prompts", 0)
    with pytest.raises(DataError) as err:
        load_splits(DatasetConfig(path=str(path), columns={"question": "prompt"}), "prompts", 0)
    assert err.value.line == 1 and "already has a 'prompt' column" in err.value.message


# --- file types -------------------------------------------------------------------------------------------------------

ROWS = [
    {"prompt": f"What is {i} + 1?", "chosen": str(i + 1), "rejected": str(i + 2), "solution": str(i + 1)}
    for i in range(5)
]


KINDS = ["jsonl", "jsonl.gz", "json", "json lines", "csv", "tsv", "parquet", "arrow", "save_to_disk", "hub folder"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_file_type_reads_the_same_rows(tmp_path, kind):
    expected = content(load_file(write_kind("jsonl", tmp_path / "ref", ROWS), "pairs", False, []))
    source = write_kind(kind, tmp_path / "d", ROWS)
    splits = load_splits(DatasetConfig(path=str(source)), "pairs", seed=0)
    assert content(splits.train) == expected and len(expected) == 5
    numbers = [int(r["row_source"].rsplit(":", 1)[1]) for r in splits.train]
    # Lines of JSON files, records of the others; an indented JSON array numbers a row by the line it starts on.
    assert numbers == ([2, 8, 14, 20, 26] if kind == "json" else [1, 2, 3, 4, 5])


def test_hub_folder_splits_come_from_file_names_and_val_split_reads_one(tmp_path):
    repo = write_kind("hub folder", tmp_path / "d", ROWS)
    splits = load_splits(DatasetConfig(path=str(repo), val_split="test"), "pairs", seed=0)
    assert (len(splits.train), len(splits.val)) == (5, 2) and splits.val_origin == f"split 'test' of {repo}"
    with pytest.raises(DataError, match="has no split 'train_prefs'; its splits: train, test"):
        load_splits(DatasetConfig(path=str(repo), split="train_prefs"), "pairs", seed=0)


def test_config_subsets_of_a_dataset_repository(tmp_path):
    from datasets import Dataset

    repo = tmp_path / "gsm8k"
    for config, n in (("main", 3), ("socratic", 2)):
        (repo / config).mkdir(parents=True)
        for split in ("train", "test"):
            Dataset.from_list([{"question": f"{config} {i}?", "answer": "#### 1"} for i in range(n)]).to_parquet(
                str(repo / config / f"{split}-00000-of-00001.parquet")
            )
    (repo / "README.md").write_text(
        "---\nconfigs:\n"
        + "".join(
            f"- config_name: {c}\n  data_files:\n  - split: train\n    path: {c}/train-*\n"
            f"  - split: test\n    path: {c}/test-*\n"
            for c in ("main", "socratic")
        )
        + "---\n"
    )
    cfg = DatasetConfig(
        path=str(repo), subset="socratic", val_split="test", columns={"question": "prompt", "answer": "solution"}
    )
    splits = load_splits(cfg, "prompts", seed=0)
    assert [r["prompt"][0]["content"] for r in splits.train] == ["socratic 0?", "socratic 1?"] and len(splits.val) == 2
    with pytest.raises(DataError, match="nope"):
        load_splits(DatasetConfig(path=str(repo), subset="nope"), "prompts", seed=0)


@pytest.mark.parametrize(
    "raw,encoding",
    [
        (lambda text: text.encode("utf-8-sig"), "utf-8 with a byte-order mark"),
        (lambda text: text.encode("utf-16"), "utf-16 with a byte-order mark"),
        (lambda text: text.replace("\n", "\r\n").encode(), "windows line endings"),
    ],
)
def test_encodings_and_line_endings_other_toolswrite_kind(tmp_path, raw, encoding):
    text = "".join(json.dumps({**r, "prompt": r["prompt"] + " ü\u2028"}) + "\n" for r in ROWS)
    for suffix in (".jsonl", ".csv"):
        path = tmp_path / f"d{suffix}"
        if suffix == ".csv":
            lines = ["prompt,chosen,rejected"] + [f'"{r["prompt"]} ü",{r["chosen"]},{r["rejected"]}' for r in ROWS]
            text = "\n".join(lines) + "\n"
        path.write_bytes(raw(text))
        rows = load_file(path, "pairs", False, [])
        assert len(rows) == 5 and rows[0]["prompt"][0]["content"].startswith("What is 0 + 1? ü"), encoding


def test_csv_cells_hold_json_lists_booleans_and_numbers(tmp_path):
    path = tmp_path / "k.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["messages", "label", "margin"])
        writer.writerow([json.dumps([*USER_ONLY, *CHOSEN]), "True", "0.5"])
        writer.writerow([json.dumps([*USER_ONLY, *REJECTED]), "0", ""])
    rows = load_file(path, "kto", False, [])
    assert [(r["completion"], r["label"]) for r in rows] == [(CHOSEN, True), (REJECTED, False)]
    assert rows[0]["margin"] == "0.5" and "margin" not in rows[1]  # an empty cell is a missing value


# --- bad rows in every file type --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind,where", [("csv", "row 2"), ("parquet", "row 2"), ("jsonl", ":2"), ("save_to_disk", "row 2")]
)
def test_bad_rows_name_the_file_the_row_and_the_field(tmp_path, kind, where):
    rows = [ROWS[0], {**ROWS[1], "rejected": ROWS[1]["chosen"]}, ROWS[2]]
    source = write_kind(kind, tmp_path / "d", rows)
    with pytest.raises(DataError) as err:
        load_splits(DatasetConfig(path=str(source)), "pairs", seed=0)
    assert err.value.line == 2 and err.value.field == "rejected" and "same as the chosen answer" in err.value.message
    assert where in err.value.one_line()
    lenient = load_splits(DatasetConfig(path=str(source), on_bad_row="skip"), "pairs", seed=0)
    assert len(lenient.train) == 2 and [(d.line, d.field) for d in lenient.dropped] == [(2, "rejected")]


@pytest.mark.parametrize(
    "row,field,fragment",
    [
        ({"prompt": Q, "chosen": A}, "rejected", "missing; pairs need the rejected answer as rejected"),
        ({"prompt": Q, "completion": A, "label": True}, "rejected", "this row has a label: KTO reads labelled rows"),
        ({"chosen": "\n\nHuman: hi\n\nAssistant: a", "rejected": "no transcript"}, "rejected", "Human: ..."),
        (
            {"chosen": [*USER_ONLY, *CHOSEN], "rejected": [{"role": "user", "content": "other"}, *REJECTED]},
            "rejected",
            "must part at an assistant answer",
        ),
        ({"conversations": [{"from": "robot", "value": Q}]}, "conversations[0].role", "unknown role 'robot'"),
        ({"instruction": "", "output": A}, "instruction", "alpaca rows need an instruction"),
        ({"query": Q, "response": A, "history": [["only one"]], "rejected_response": B}, "history[0]", "pair"),
        (
            {"messages": [*USER_ONLY, *CHOSEN], "rejected_messages": "[not json", "x": 1},
            "rejected_messages",
            "neither JSON",
        ),
        (
            {"messages": [*USER_ONLY, *CHOSEN], "rejected_response": B, "images": [], "rejected_images": ["a.png"]},
            "rejected_images",
            "differs from images",
        ),
    ],
)
def test_pair_problems_in_each_format(tmp_path, row, field, fragment):
    path = write_jsonl(tmp_path / "d.jsonl", [row])
    with pytest.raises(DataError) as err:
        load_file(path, "pairs", False, [])
    assert (err.value.line, err.value.field) == (1, field) and fragment in err.value.message, err.value.message


def test_sft_refuses_an_undesirable_answer(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": Q, "completion": A, "label": False}])
    with pytest.raises(DataError, match="undesirable"):
        load_file(path, "sft", False, [])


def test_format_setting_overrides_detection(tmp_path):
    # A row with both shapes: detection reads the ms-swift pair; format=trl reads TRL's columns instead.
    row = {
        "messages": [*USER_ONLY, *CHOSEN],
        "rejected_response": B,
        "prompt": "Other?",
        "chosen": "x",
        "rejected": "y",
    }
    path = write_jsonl(tmp_path / "d.jsonl", [row])
    assert load_file(path, "pairs", False, [])[0]["prompt"] == USER_ONLY
    assert load_file(path, "pairs", False, [], dataset_format="trl")[0]["prompt"] == [
        {"role": "user", "content": "Other?"}
    ]


# --- several sources, held-out rows ---------------------------------------------------------------------------------


def test_sources_mix_with_sampled_counts_per_source(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [{**ROWS[i], "prompt": f"a{i}"} for i in range(5)])
    b = write_kind("parquet", tmp_path / "b", [{**ROWS[i], "prompt": f"b{i}"} for i in range(3)])
    cfg = DatasetConfig(path=[f"{a}#2", f"{b}#7"])
    splits = load_splits(cfg, "pairs", seed=3)
    names = [r["prompt"][0]["content"] for r in splits.train]
    assert len(names) == 9 and len(set(names[:2])) == 2 and set(names[:2]) <= {f"a{i}" for i in range(5)}
    # 7 of 3 rows: two whole copies, then one more drawn.
    assert sorted(names[2:]) == sorted(["b0", "b1", "b2"] * 2 + [names[-1]])
    assert [(s["source"], s["read"], s["rows"], s["format"]) for s in splits.sources] == [
        (f"{a}#2", 5, 2, "trl"),
        (f"{b}#7", 3, 7, "trl"),
    ]
    assert names == [r["prompt"][0]["content"] for r in load_splits(cfg, "pairs", seed=3).train]  # seeded
    assert names != [r["prompt"][0]["content"] for r in load_splits(cfg, "pairs", seed=4).train]


def test_held_out_rows_follow_the_data_never_the_bundled_set(tmp_path, compose):
    from rlhf_lab.config.run import build_run

    mine = write_jsonl(tmp_path / "mine.jsonl", ROWS * 4)
    run = build_run(compose([f"dataset.path={mine}"]), tmp_path / "run")
    splits = load_splits(run.dataset, "pairs", seed=0)
    assert len(splits.val) == 0 and "no training source has a 'validation' split" in splits.val_origin
    run = build_run(compose([f"dataset.path={mine}", "dataset.split_ratio=0.25"]), tmp_path / "run")
    splits = load_splits(run.dataset, "pairs", seed=0)
    assert (len(splits.train), len(splits.val)) == (15, 5) and splits.val_origin.startswith("split_ratio 0.25")
    held = {r["row_source"] for r in splits.val}
    assert held.isdisjoint(r["row_source"] for r in splits.train)
    bundled = load_splits(build_run(compose([]), tmp_path / "run").dataset, "pairs", seed=0)
    assert len(bundled.val) == 96 and "validation" in bundled.val_origin
    # An explicit held-out file wins, and is read whole although the bundled option names a validation split.
    own_val = load_splits(build_run(compose([f"dataset.val_path={mine}"]), tmp_path / "run").dataset, "pairs", seed=0)
    assert (len(own_val.train), len(own_val.val)) == (128, 20) and own_val.val_origin == f"dataset.val_path {mine}"


# --- the Hub --------------------------------------------------------------------------------------------------------


def test_an_unreachable_hub_is_one_line_quickly(tmp_path):
    start = time.time()
    # The endpoint is a closed port on this machine: the same code path as a Hub out of reach.
    proc = run_cli(
        ["model=tiny", "dataset=ultrafeedback_binarized", f"hydra.run.dir={tmp_path}/run"],
        cwd=tmp_path,
        env={"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0"},
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("data error")]
    assert len(lines) == 1 and "HuggingFaceH4/ultrafeedback_binarized: cannot reach the Hugging Face Hub" in lines[0]
    assert "Traceback" not in proc.stderr and time.time() - start < 30


def test_named_datasets_check_the_algorithm(compose, tmp_path):
    from rlhf_lab.config.run import build_run

    with pytest.raises(ConfigError, match="suits algorithm=grpo/ppo, not dpo"):
        build_run(compose(["dataset=gsm8k"]), tmp_path)
    run = build_run(compose(["dataset=gsm8k", "algorithm=grpo"]), tmp_path)
    assert (run.dataset.path, run.dataset.subset, run.dataset.columns) == (
        "openai/gsm8k",
        "main",
        {"question": "prompt", "answer": "solution"},
    )


@pytest.mark.parametrize(
    "names",
    [
        ["train.jsonl", "val.jsonl"],
        ["training.csv", "dev.csv", "testing.csv"],
        ["train.jsonl.gz", "validation.jsonl.gz", "notes.txt"],
    ],
)
def test_a_plain_folder_splits_as_datasets_splits_it(tmp_path, names):
    """One file per split, named for it: resolved without datasets, and the same as datasets' own rules."""
    from datasets import load_dataset_builder

    from rlhf_lab.data.sources import _plain_layout

    for name in names:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"")
    reference = load_dataset_builder(str(tmp_path)).config.data_files
    expected = {
        str(split): sorted(str(f) for f in files if not f.endswith(".txt")) for split, files in reference.items()
    }
    assert _plain_layout(tmp_path) == expected


def test_other_folders_are_left_to_datasets(tmp_path):
    from rlhf_lab.data.sources import _plain_layout

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train-00000.parquet").write_bytes(b"")
    assert _plain_layout(tmp_path) is None
    (tmp_path / "data" / "train-00000.parquet").unlink()
    (tmp_path / "train.jsonl").write_bytes(b"")
    (tmp_path / "val.csv").write_bytes(b"")
    assert _plain_layout(tmp_path) is None  # two formats: datasets refuses it, with its reason
    (tmp_path / "val.csv").unlink()
    (tmp_path / "README.md").write_text("---\nconfigs: []\n---\n")
    assert _plain_layout(tmp_path) is None
