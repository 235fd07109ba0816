"""infer: a model's answers to a file of prompts (any format, images included), and a chat in a real terminal."""

import json
import os
import pty
import select
import subprocess
import sys
import time

import pytest
import torch
from conftest import TINY, run_cli
from helpers.data_files import write_kind

TRAINED = [*TINY, "train.eval=false", "train.learning_rate=5e-2"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir, train):
    root = tmp_path_factory.mktemp("infer")
    done = {}
    for name, extra in {"dpo": [], "rm": ["algorithm=rm"], "vl": ["model=tiny_vl", "dataset=shapes"]}.items():
        assert train([*TRAINED, *extra], root / name)["status"] == "completed"
        done[name] = root / name
    return done


def _prompts(path, n=5):
    rows = [
        {"messages": [{"role": "user", "content": f"What is {i} + {i}?"}], "solution": str(2 * i)} for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _greedy(model_dir, prompts, max_new_tokens):
    """Greedy answers of a plain transformers checkpoint, one prompt at a time."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    answers = []
    for prompt in prompts:
        text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False, top_p=None, top_k=None)
        answers.append(tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True))
    return answers


def test_answers_of_a_run_equal_the_exported_models_greedy_answers(runs, tmp_path):
    run = runs["dpo"]
    data, out = _prompts(tmp_path / "q.jsonl"), tmp_path / "answers.jsonl"
    proc = run_cli(
        ["infer", f"model={run}", f"data={data}", f"out={out}", "max_new_tokens=6", "max_batch_size=1"], cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert f"5 answers from {run / 'adapter'}" in proc.stdout and str(out) in proc.stdout
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["prompt"][-1]["content"] for r in records] == [f"What is {i} + {i}?" for i in range(5)]
    assert [r["solution"] for r in records] == ["0", "2", "4", "6", "8"]  # the row's own columns come along
    assert all(r["source"].endswith(f"q.jsonl:{i + 1}") for i, r in enumerate(records))
    # The adapter merged in memory answers as the exported checkpoint does.
    assert run_cli(["export", f"run={run}", f"out={tmp_path / 'merged'}"], cwd=tmp_path).returncode == 0
    expected = _greedy(tmp_path / "merged", [r["prompt"] for r in records], 6)
    assert [r["response"] for r in records] == expected
    assert any(expected)


def test_batches_give_every_row_one_answer_and_any_format_is_read(runs, tmp_path):
    # Preference pairs in alpaca's style, in parquet: their prompts are asked.
    rows = [
        {"instruction": "Add.", "input": f"{i} + {i}", "output": str(2 * i), "rejected_response": "0"} for i in range(7)
    ]
    pairs = write_kind("parquet", tmp_path / "pairs", rows)
    out = tmp_path / "a.jsonl"
    proc = run_cli(
        ["infer", f"model={runs['dpo']}", f"data={pairs}", f"out={out}", "max_new_tokens=3", "max_batch_size=3"],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 7 and all(isinstance(r["response"], str) for r in records)
    assert not list(tmp_path.glob(".a.jsonl.partial"))


def test_sampling_is_reproducible_with_its_seed(runs, tmp_path):
    data = _prompts(tmp_path / "q.jsonl", 3)

    def answers(seed, name):
        args = ["infer", f"model={runs['dpo']}", f"data={data}", f"out={tmp_path / name}", "max_new_tokens=8"]
        proc = run_cli([*args, "temperature=1.5", f"seed={seed}"], cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        return [json.loads(line)["response"] for line in (tmp_path / name).read_text().splitlines()]

    assert answers(1, "a.jsonl") == answers(1, "b.jsonl") != answers(2, "c.jsonl")


def test_a_vision_language_run_answers_prompts_with_images(runs, tmp_path):
    out = tmp_path / "vl.jsonl"
    proc = run_cli(
        ["infer", f"model={runs['vl']}", "data=pkg://rlhf_lab/demo_data/shapes#3", f"out={out}", "max_new_tokens=4"],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 3 and all(b["type"] == "image" for r in records for b in r["prompt"][0]["content"][:1])


@pytest.mark.parametrize(
    "args,expected",
    [
        (["model=/nowhere/model", "data=DATA"], "config error: model: /nowhere/model does not exist"),
        (["model=RM", "data=DATA"], "is a reward-model run: it scores answers and does not write them"),
        (["model=RUN", "data=BAD"], "data error: BAD:2"),
        (["model=RUN"], "config error: data: is required"),
        (["model=RUN", "data=DATA", "top_p=0"], "config error: top_p: must be > 0"),
    ],
    ids=["no-model", "reward-model", "bad-row", "no-data", "bad-top-p"],
)
def test_bad_input_is_one_line_exit_2(runs, tmp_path, args, expected):
    data = _prompts(tmp_path / "q.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(data.read_text().splitlines()[0] + "\n{not json\n")
    paths = {"DATA": str(data), "BAD": str(bad), "RM": str(runs["rm"]), "RUN": str(runs["dpo"])}
    args = [a.split("=")[0] + "=" + paths.get(a.split("=")[1], a.split("=")[1]) for a in args]
    expected = expected.replace("BAD", str(bad))
    proc = run_cli(["infer", *args, f"out={tmp_path / 'x.jsonl'}"], cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and expected in proc.stderr, proc.stderr
    assert not (tmp_path / "x.jsonl").exists()


def _read_until(fd, marker: bytes, timeout=120) -> bytes:
    seen = b""
    deadline = time.time() + timeout
    while marker not in seen and time.time() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    assert marker in seen, seen[-500:]
    return seen


def test_chat_in_a_real_terminal(runs, tmp_path):
    # A pseudo-terminal, as a person's shell gives: prompts appear before input is typed, answers after each line.
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlhf_lab", "infer", f"model={runs['dpo']}", "chat=true", "max_new_tokens=4"],
        stdin=child,
        stdout=child,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
        env={**os.environ, "WANDB_SILENT": "true"},
    )
    os.close(child)
    try:
        assert b"chatting with" in _read_until(main, b">>> ")
        os.write(main, b"What is 2 + 2?\n")
        first = _read_until(main, b">>> ")
        os.write(main, b"/clear\n")
        assert b"(cleared)" in _read_until(main, b">>> ")
        os.write(main, b"/exit\n")
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        os.close(main)
    # The typed line is echoed by the terminal, then the answer, then the next prompt.
    assert first.startswith(b"What is 2 + 2?") and first.count(b"\n") >= 2
