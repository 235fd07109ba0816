"""Every input format and file type trains the tiny model, and every algorithm trains on each kind of row it reads
(each job one optimizer step)."""

import gzip
import json
import math
from pathlib import Path

import pytest
from conftest import run_cli
from datasets import Dataset
from helpers.data_files import write_kind

STEP = [
    "model=tiny",
    "train.max_steps=1",
    "train.per_device_train_batch_size=2",
    "train.gradient_accumulation_steps=1",
    "train.eval=false",
    "train.save_steps=0",
    "train.max_length=96",
]
PAIR_ALGORITHMS = "dpo,kto,cpo,simpo,orpo,rm"
N = 4


def _q(i):
    return f"What is {i} + {i}?"


def _a(i, wrong=False):
    return f"{i} + {i} = {2 * i + (1 if wrong else 0)}."


def _jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _turns(i, wrong=False):
    return [{"role": "user", "content": _q(i)}, {"role": "assistant", "content": _a(i, wrong)}]


# format -> (file name, rows) for the pair-reading algorithms; detected format it must report.
PAIR_FILES = {
    "rejected_messages": ("messages", lambda i: {"messages": _turns(i), "rejected_messages": _turns(i, True)}),
    "sharegpt": (
        "sharegpt",
        lambda i: {
            "conversations": [{"from": "human", "value": _q(i)}, {"from": "gpt", "value": _a(i)}],
            "rejected_response": _a(i, True),
        },
    ),
    "alpaca": (
        "alpaca",
        lambda i: {"instruction": "Add.", "input": _q(i), "output": _a(i), "rejected_response": _a(i, True)},
    ),
    "query_response": (
        "query_response",
        lambda i: {"query": _q(i), "response": _a(i), "rejected_response": _a(i, True), "history": [["Hi", "Hello."]]},
    ),
    "trl_standard": ("trl", lambda i: {"prompt": _q(i), "chosen": _a(i), "rejected": _a(i, True)}),
    "trl_conversational": (
        "trl",
        lambda i: {"prompt": _turns(i)[:1], "chosen": _turns(i)[1:], "rejected": _turns(i, True)[1:]},
    ),
}


def _sweep(tmp: Path, name: str, args: list[str], jobs: int) -> list[dict]:
    sweep = tmp / f"sweep_{name}"
    proc = run_cli(["-m", *STEP, *args, f"hydra.sweep.dir={sweep}"], cwd=tmp, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/summary.json"))]
    assert len(summaries) == jobs
    return summaries


def _trained(summary: dict, fmt: str) -> None:
    label = " ".join(summary["overrides"])
    assert summary["status"] == "completed" and summary["global_steps"] == 1, label
    assert math.isfinite(summary["train_loss"]), label
    assert {s["format"] for s in summary["data_sources"]} == {fmt}, label


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    files = {
        name: _jsonl(root / f"{name}.jsonl", [make(i) for i in range(N)]) for name, (_, make) in PAIR_FILES.items()
    }
    # UltraFeedback-binarized's layout: parquet shards under data/, its preference splits named in the file names.
    uf = root / "ultrafeedback"
    (uf / "data").mkdir(parents=True)
    for split in ("train_prefs", "test_prefs", "train_sft"):
        Dataset.from_list(
            [
                {
                    "prompt": _q(i),
                    "prompt_id": str(i),
                    "chosen": _turns(i),
                    "rejected": _turns(i, True),
                    "messages": _turns(i),
                    "score_chosen": 8.0,
                    "score_rejected": 2.0,
                }
                for i in range(N)
            ]
        ).to_parquet(str(uf / "data" / f"{split}-00000-of-00001.parquet"))
    # HH-RLHF's layout: gzipped JSON lines in one folder per subset.
    hh = root / "hh-rlhf"
    for subset in ("harmless-base", "helpful-base"):
        (hh / subset).mkdir(parents=True)
        for split in ("train", "test"):
            with gzip.open(hh / subset / f"{split}.jsonl.gz", "wt") as f:
                for i in range(N):
                    head = f"\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: {_q(i)}\n\nAssistant: "
                    f.write(json.dumps({"chosen": head + _a(i), "rejected": head + _a(i, True)}) + "\n")
    # GSM8K's layout: a config folder per subset, named in the README's configs.
    gsm = root / "gsm8k"
    (gsm / "main").mkdir(parents=True)
    for split in ("train", "test"):
        Dataset.from_list(
            [
                {
                    "question": f"Ann has {i} apples and buys {i}. How many now?",
                    "answer": f"She has {i}+{i} = <<{i}+{i}={2 * i}>>{2 * i} apples.\n#### {2 * i}",
                }
                for i in range(N)
            ]
        ).to_parquet(str(gsm / "main" / f"{split}-00000-of-00001.parquet"))
    (gsm / "README.md").write_text(
        "---\nconfigs:\n- config_name: main\n  data_files:\n  - split: train\n    path: main/train-*\n"
        "  - split: test\n    path: main/test-*\n---\n"
    )
    math_repo = root / "MATH-lighteval"
    (math_repo / "data").mkdir(parents=True)
    for split in ("train", "test"):
        Dataset.from_list(
            [
                {
                    "problem": f"Compute ${i}+{i}$.",
                    "level": "Level 1",
                    "type": "Algebra",
                    "solution": f"${i}+{i}={2 * i}$, so the answer is $\\boxed{{{2 * i}}}$.",
                }
                for i in range(N)
            ]
        ).to_parquet(str(math_repo / "data" / f"{split}-00000-of-00001.parquet"))
    files.update(ultrafeedback=uf, hh=hh, gsm8k=gsm, math=math_repo)
    files["unpaired"] = _jsonl(
        root / "unpaired.jsonl",
        [{"prompt": _q(i), "completion": _a(i, i % 2 == 1), "label": i % 2 == 0} for i in range(N)],
    )
    files["labelled_query"] = _jsonl(
        root / "labelled.jsonl",
        [{"query": _q(i), "response": _a(i, i % 2 == 1), "label": i % 2 == 0} for i in range(N)],
    )
    files["prompt_only"] = _jsonl(root / "prompts.jsonl", [{"prompt": _q(i), "solution": str(2 * i)} for i in range(N)])
    files["prompt_completion"] = _jsonl(root / "sft.jsonl", [{"prompt": _q(i), "completion": _a(i)} for i in range(N)])
    files["alpaca_sft"] = _jsonl(
        root / "alpaca_sft.jsonl", [{"instruction": "Add.", "input": _q(i), "output": _a(i)} for i in range(N)]
    )
    files["sharegpt_sft"] = _jsonl(
        root / "sharegpt_sft.jsonl",
        [
            {
                "conversations": [
                    {"from": "system", "value": "Add."},
                    {"from": "human", "value": _q(i)},
                    {"from": "gpt", "value": _a(i)},
                ]
            }
            for i in range(N)
        ],
    )
    return root, files


def test_each_pair_format_and_each_pair_algorithm_train(data):
    # Formats are read into the same pair rows whichever algorithm trains on them, and each algorithm trains on
    # those rows whatever file they came from: each format is trained once, by a different algorithm each time, so
    # that every format and every pair-reading algorithm is covered by six one-step runs.
    root, files = data
    algorithms = PAIR_ALGORITHMS.split(",")
    assert len(algorithms) == len(PAIR_FILES)
    for algorithm, (name, (fmt, _)) in zip(algorithms, PAIR_FILES.items()):
        (summary,) = _sweep(
            root, name, [f"algorithm={algorithm}", "dataset=custom", f"dataset.path={files[name]}"], jobs=1
        )
        assert summary["algorithm"] == algorithm
        _trained(summary, fmt)
        # KTO unpairs every pair into a desirable and an undesirable row.
        assert summary["train_rows"] == (2 * N if algorithm == "kto" else N)


@pytest.mark.parametrize(
    "named,key,fmt", [("ultrafeedback_binarized", "ultrafeedback", "trl"), ("hh_rlhf", "hh", "hh_rlhf")]
)
def test_named_preference_datasets_train_from_local_copies(data, named, key, fmt):
    root, files = data
    summaries = _sweep(
        root, named, [f"algorithm={PAIR_ALGORITHMS}", f"dataset={named}", f"dataset.path={files[key]}"], jobs=6
    )
    hh_rows = 2 * N  # two subset folders
    for s in summaries:
        _trained(s, fmt)
        expected = hh_rows if named == "hh_rlhf" else N
        assert s["train_rows"] == (2 * expected if s["algorithm"] == "kto" else expected)
        assert "test" in s["val_source"]  # the held-out split of the same source (test_prefs, test)


def test_unpaired_rows_train_kto(data):
    root, files = data
    paths = f"{files['unpaired']},{files['labelled_query']}"
    for s in _sweep(root, "kto", ["algorithm=kto", "dataset=custom", f"dataset.path={paths}"], jobs=2):
        _trained(s, "trl" if "unpaired" in s["data_sources"][0]["source"] else "query_response")
        assert s["train_rows"] == N


def test_sft_formats_train_gkd(data):
    root, files = data
    names = ["prompt_completion", "alpaca_sft", "sharegpt_sft", "query_response"]
    paths = ",".join(str(files[n]) for n in names)
    summaries = _sweep(
        root,
        "gkd",
        [
            "algorithm=gkd",
            "algorithm.teacher_model=tiny",
            "model.num_hidden_layers=1",
            "algorithm.max_completion_length=4",
            "dataset=custom",
            f"dataset.path={paths}",
        ],
        jobs=len(names),
    )
    fmts = {
        "prompt_completion": "trl",
        "alpaca_sft": "alpaca",
        "sharegpt_sft": "sharegpt",
        "query_response": "query_response",
    }
    for s in summaries:
        name = next(n for n in names if s["data_sources"][0]["source"] == str(files[n]))
        _trained(s, fmts[name])


ONLINE = ["algorithm.max_completion_length=8", "algorithm.temperature=1.0", "algorithm.reward_funcs=[accuracy]"]


@pytest.mark.parametrize("algorithm,extra", [("grpo", ["algorithm.num_generations=2"]), ("ppo", [])])
def test_prompt_sources_train_the_online_algorithms(data, algorithm, extra):
    root, files = data
    jobs = _sweep(
        root,
        f"{algorithm}_prompts",
        [f"algorithm={algorithm}", *ONLINE, *extra, "dataset=custom", f"dataset.path={files['prompt_only']}"],
        jobs=1,
    )
    _trained(jobs[0], "trl")
    for named, key in (("gsm8k", "gsm8k"), ("competition_math", "math")):
        (s,) = _sweep(
            root,
            f"{algorithm}_{named}",
            [f"algorithm={algorithm}", *ONLINE, *extra, f"dataset={named}", f"dataset.path={files[key]}"],
            jobs=1,
        )
        _trained(s, "trl")
        # The accuracy reward read every row's solution: the GSM8K '#### N' line or the \\boxed{} answer.
        assert s["train_rows"] == N and s["val_source"].startswith("split 'test'")


def test_every_file_type_trains(tmp_path):
    rows = [{"prompt": _q(i), "chosen": _a(i), "rejected": _a(i, True)} for i in range(N)]
    kinds = ["csv", "tsv", "json", "jsonl.gz", "parquet", "arrow", "save_to_disk"]
    paths = [write_kind(k, tmp_path / k.replace(".", "_"), rows) for k in kinds]
    # Two sources mixed in one more job: SOURCE#N draws rows from each.
    mixed = f'["{paths[0]}#3","{paths[4]}#5"]'  # Hydra reads a '#' only inside quotes
    summaries = _sweep(
        tmp_path, "kinds", ["dataset=custom", f"dataset.path={','.join(map(str, paths))},{mixed}"], jobs=len(kinds) + 1
    )
    for s in summaries:
        _trained(s, "trl")
        if len(s["data_sources"]) == 2:
            assert [d["rows"] for d in s["data_sources"]] == [3, 5] and s["train_rows"] == 8
        else:
            assert s["train_rows"] == N
