"""ms-swift pair rows: reading every file kind, and one clear error per kind of bad input."""

import json
from pathlib import Path

import pytest
from conftest import run_cli

from rlhf_lab.config.dataset import DatasetConfig
from rlhf_lab.data.load import load_file, load_splits, write_dropped
from rlhf_lab.errors import DataError

GOOD = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "4"},
    ],
    "rejected_response": "5",
    "solution": "4",
}


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_pair_rows_become_trl_conversations_and_keep_extra_columns(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD])
    rows = load_file(path, "pairs", lenient=False, dropped=[])
    assert rows == [
        {
            "solution": "4",
            "prompt": GOOD["messages"][:2],
            "chosen": [{"role": "assistant", "content": "4"}],
            "rejected": [{"role": "assistant", "content": "5"}],
            "row_source": f"{path}:1",
        }
    ]


def _content(rows):
    return [{k: v for k, v in r.items() if k != "row_source"} for r in rows]


def test_json_array_and_saved_dataset_read_the_same_rows(tmp_path):
    from datasets import Dataset

    jsonl = load_file(write_jsonl(tmp_path / "d.jsonl", [GOOD, GOOD]), "pairs", False, [])
    array_file = tmp_path / "d.json"
    array_file.write_text(json.dumps([GOOD, GOOD], indent=2))
    from_array = load_file(array_file, "pairs", False, [])
    Dataset.from_list([GOOD, GOOD]).save_to_disk(str(tmp_path / "saved"))
    from_disk = load_file(tmp_path / "saved", "pairs", False, [])
    assert _content(jsonl) == _content(from_array) == _content(from_disk)
    assert [r["row_source"].rsplit(":", 1)[1] for r in jsonl] == ["1", "2"]


def bad(**changes):
    row = json.loads(json.dumps(GOOD))
    for key, value in changes.items():
        if value is None and key == "rejected_response":
            del row[key]
        else:
            row[key] = value
    return row


CASES = [
    ("{not json", 2, None, "invalid JSON"),
    (bad(rejected_response=None), 2, "rejected_response", "missing"),
    (bad(rejected_response=""), 2, "rejected_response", "non-empty string"),
    (bad(messages=GOOD["messages"][:2]), 2, "messages[1].role", "last message must be the assistant's answer"),
    (
        bad(messages=[{"role": "robot", "content": "hi"}, GOOD["messages"][2]]),
        2,
        "messages[0].role",
        "unknown role 'robot'",
    ),
    (bad(messages=[GOOD["messages"][1], {"role": "assistant", "content": None}]), 2, "messages[1].content", "null"),
    (bad(messages=[]), 2, "messages", "non-empty list"),
    ([1, 2], 2, None, "expected a JSON object"),
]


@pytest.mark.parametrize("row,line,field,fragment", CASES)
def test_each_bad_row_names_file_line_and_field(tmp_path, row, line, field, fragment):
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD, row, GOOD])
    with pytest.raises(DataError) as err:
        load_file(path, "pairs", lenient=False, dropped=[])
    e = err.value
    assert (e.path, e.line, e.field) == (str(path), line, field)
    assert fragment in e.message
    assert f"{path}:{line}" in e.one_line()


def test_blank_lines_keep_line_numbers_true(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n\n" + json.dumps(bad(rejected_response=None)) + "\n")
    with pytest.raises(DataError) as err:
        load_file(path, "pairs", False, [])
    assert err.value.line == 4


def test_json_array_errors_name_the_element_line(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps([GOOD, bad(rejected_response=None)], indent=2))
    with pytest.raises(DataError) as err:
        load_file(path, "pairs", False, [])
    starts = [i + 1 for i, line in enumerate(path.read_text().splitlines()) if line == "  {"]
    expected_line = starts[1]  # where the second element starts
    assert err.value.line == expected_line


@pytest.mark.parametrize(
    "content,fragment",
    [(b"", "empty"), (b"  \n\n", "empty"), (b"caf\xe9", "not UTF-8"), (b'{"a": 1}', "cannot tell the row format")],
)
def test_file_level_errors(tmp_path, content, fragment):
    path = tmp_path / ("d.json" if b"{" in content else "d.jsonl")
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        load_file(path, "pairs", False, [])
    assert fragment in err.value.message and err.value.line is None


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_file(tmp_path / "nope.jsonl", "pairs", False, [])


def test_lenient_mode_drops_counts_and_lists_bad_rows(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD, "{oops", GOOD, bad(rejected_response=None), GOOD])
    cfg = DatasetConfig(path=str(path), on_bad_row="skip")
    splits = load_splits(cfg, "pairs", seed=0)
    assert len(splits.train) == 3 and len(splits.dropped) == 2
    listed = write_dropped(splits.dropped, tmp_path)
    records = [json.loads(line) for line in listed.read_text().splitlines()]
    assert [(r["line"], r["field"]) for r in records] == [(2, None), (4, "rejected_response")]


def test_split_ratio_and_max_samples(tmp_path):
    rows = [bad(solution=str(i)) for i in range(20)]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    splits = load_splits(DatasetConfig(path=str(path), split_ratio=0.25, max_samples=10), "pairs", seed=3)
    assert len(splits.val) == 5 and len(splits.train) == 10
    held = {r["solution"] for r in splits.val}
    assert held.isdisjoint(r["solution"] for r in splits.train)
    # Deterministic for a seed.
    again = load_splits(DatasetConfig(path=str(path), split_ratio=0.25, max_samples=10), "pairs", seed=3)
    assert held == {r["solution"] for r in again.val}


def test_bundled_demo_data_is_valid_and_disjoint():
    from rlhf_lab.paths import resolve_data_path

    train = load_file(resolve_data_path("pkg://rlhf_lab/demo_data/arith_pairs/train.jsonl"), "pairs", False, [])
    val = load_file(resolve_data_path("pkg://rlhf_lab/demo_data/arith_pairs/val.jsonl"), "pairs", False, [])
    assert len(train) >= 128 and len(val) >= 64
    questions = lambda rows: {r["prompt"][-1]["content"] for r in rows}  # noqa: E731
    assert questions(train).isdisjoint(questions(val))
    for r in train + val:
        assert r["chosen"][0]["content"] != r["rejected"][0]["content"]
        assert r["chosen"][0]["content"].endswith(f"= {r['solution']}.")


def test_bundled_reward_pairs_are_wrong_in_four_ways_and_never_show_a_held_out_problem():
    import re

    from rlhf_lab.paths import resolve_data_path

    def rows(name, split, fmt):
        return load_file(resolve_data_path(f"pkg://rlhf_lab/demo_data/{name}/{split}.jsonl"), fmt, False, [])

    train, val = rows("word_pairs", "train", "pairs"), rows("word_pairs", "val", "pairs")
    questions = lambda rs: {r["prompt"][-1]["content"] for r in rs}  # noqa: E731
    assert len(train) == 512 and len(val) == 96
    assert questions(train).isdisjoint(questions(val))
    # PPO and GRPO are scored on arith_math's held-out problems: no reward model trains on them.
    held_out = questions(rows("arith_math", "val", "prompts"))
    assert questions(train).isdisjoint(held_out) and questions(val).isdisjoint(held_out)
    kinds = {"other operation": 0, "slip": 0, "no working": 0, "extra step": 0}
    restating = {"chosen": 0, "rejected": 0}
    equation = r"(\d+) ([+-]) (\d+) = (\d+)"

    def without_restatement(answer, side):
        """The answer without a last line "The answer is N." (N must be the answer's own count)."""
        line = re.search(r"[\n ]The answer is (\d+)\.$", answer)
        if line is None:
            return answer
        restating[side] += 1
        body = answer[: line.start()]
        assert re.findall(r"\d+", body)[-1] == line.group(1)
        return body

    for r in train + val:
        chosen = without_restatement(r["chosen"][0]["content"], "chosen")
        rejected = without_restatement(r["rejected"][0]["content"], "rejected")
        a, op, b, result = re.search(equation, chosen).groups()
        assert int(result) == (int(a) + int(b) if op == "+" else int(a) - int(b)) == int(r["solution"])
        assert re.fullmatch(rf"\w+ has {a} [+-] {b} = {result} \w+\.", chosen)
        worked = re.search(equation, rejected)
        if worked is None:
            kinds["no working"] += 1
            assert int(re.search(r"\d+", rejected).group()) != int(result)
        elif worked.group(2) != op:
            kinds["other operation"] += 1
        elif worked.group(4) != result:
            kinds["slip"] += 1
            assert worked.groups()[:3] == (a, op, b) and 1 <= abs(int(worked.group(4)) - int(result)) <= 2
        else:
            # The right working, then an extra step that adds to the count (cut off or not).
            kinds["extra step"] += 1
            extra = rejected[len(chosen) + 1 :]
            assert rejected.startswith(chosen) and rejected[len(chosen)] in "\n "
            assert re.fullmatch(r"\w+ has \d+ \+ \d+ = \d+ \w+ now\.", extra) or len(extra.split()) < 10
            added = re.search(r"= (\d+)", extra)
            assert added is None or int(added.group(1)) > int(result)
    # The restatement is on both sides alike: by itself it tells a reward model nothing.
    assert restating["chosen"] == restating["rejected"] > len(train + val) // 4
    assert min(kinds.values()) >= len(train + val) // 4


def test_data_error_stops_the_cli_before_the_model_loads(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD, bad(rejected_response=None)])
    proc = run_cli(["model=qwen3_8b", f"dataset.path={path}", f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip() == f"data error: {path}:2: field 'rejected_response': missing; "
        "pairs need the rejected answer as rejected_response"
    )
    # qwen3_8b cannot load here: reaching it would have been a model error, not a data error. The run never began,
    # so no directory that looks like a run is left.
    assert not (tmp_path / "run").exists()


KTO_GOOD = {"messages": GOOD["messages"], "label": True}


def test_kto_rows_become_prompt_completion_label(tmp_path):
    path = write_jsonl(tmp_path / "k.jsonl", [KTO_GOOD, {**KTO_GOOD, "label": False}])
    rows = load_file(path, "kto", False, [])
    assert rows[0] == {
        "prompt": GOOD["messages"][:2],
        "completion": [GOOD["messages"][2]],
        "label": True,
        "row_source": f"{path}:1",  # where the row came from, for errors raised later (e.g. by a reward)
    }
    assert rows[1]["label"] is False


def test_kto_reads_pair_rows_as_one_desirable_and_one_undesirable(tmp_path):
    rows = load_file(write_jsonl(tmp_path / "k.jsonl", [GOOD]), "kto", False, [])
    assert [(r["completion"][0]["content"], r["label"]) for r in rows] == [("4", True), ("5", False)]
    assert all(r["prompt"] == GOOD["messages"][:2] and r["solution"] == "4" for r in rows)


@pytest.mark.parametrize(
    "row,field,fragment",
    [
        ({**KTO_GOOD, "label": "yes"}, "label", "expected true (desirable) or false"),
        ({**KTO_GOOD, "label": 2}, "label", "expected true (desirable) or false"),
        ({"messages": GOOD["messages"]}, "label", "missing"),
        ({"messages": GOOD["messages"][:2], "label": True}, "messages[1].role", "assistant's answer"),
    ],
)
def test_kto_label_errors_name_file_and_line(tmp_path, row, field, fragment):
    path = write_jsonl(tmp_path / "k.jsonl", [KTO_GOOD, KTO_GOOD, row])
    with pytest.raises(DataError) as err:
        load_file(path, "kto", False, [])
    assert (err.value.line, err.value.field) == (3, field) and fragment in err.value.message


def test_pair_margin_must_be_a_number(tmp_path):
    assert (
        load_file(write_jsonl(tmp_path / "m.jsonl", [{**GOOD, "margin": 0.5}]), "pairs", False, [])[0]["margin"] == 0.5
    )
    with pytest.raises(DataError, match="margin"):
        load_file(write_jsonl(tmp_path / "n.jsonl", [{**GOOD, "margin": "big"}]), "pairs", False, [])


def test_bundled_kto_demo_is_unpaired_for_training_and_paired_for_evaluation():
    from rlhf_lab.paths import resolve_data_path

    train = load_file(resolve_data_path("pkg://rlhf_lab/demo_data/arith_kto/train.jsonl"), "kto", False, [])
    val = load_file(resolve_data_path("pkg://rlhf_lab/demo_data/arith_kto/val.jsonl"), "kto", False, [])
    assert 0.3 < sum(r["label"] for r in train) / len(train) < 0.7
    assert len({r["prompt"][-1]["content"] for r in train}) == len(train)  # one answer per question
    assert len(val) == 2 * len({r["prompt"][-1]["content"] for r in val})  # both answers per question


def test_prompt_rows_keep_the_query_and_the_reward_columns(tmp_path):
    query = {"messages": GOOD["messages"][:2], "solution": "4", "difficulty": 1}
    path = write_jsonl(tmp_path / "p.jsonl", [query, GOOD])
    rows = load_file(path, "prompts", False, [])
    # a trailing assistant answer is dropped (the policy writes its own); rejected_response too
    assert rows[0] == {"prompt": GOOD["messages"][:2], "solution": "4", "difficulty": 1, "row_source": f"{path}:1"}
    assert rows[1]["prompt"] == GOOD["messages"][:2] and "rejected_response" not in rows[1]
    bad = {"messages": [{"role": "system", "content": "s"}]}
    with pytest.raises(DataError, match="p2.jsonl:1: field 'messages': must end with the user's query"):
        load_file(write_jsonl(tmp_path / "p2.jsonl", [bad]), "prompts", False, [])


def test_sft_rows_mark_whether_they_have_an_answer(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", [GOOD, {"messages": GOOD["messages"][:2]}])
    with_answer, query_only = load_file(path, "sft", False, [])
    assert with_answer["has_answer"] and with_answer["messages"] == GOOD["messages"]
    assert not query_only["has_answer"] and query_only["messages"][-1] == {"role": "assistant", "content": ""}
