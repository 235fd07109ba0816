"""Tool calling in GRPO (algorithm.tools, algorithm.environment, algorithm.max_turns) on the tiny model. The random
tiny model never writes a tool call itself, so the model's turns are scripted: a stand-in for the trainer's
generation answers with a given text, and TRL's own tool loop, masking and scoring run on it as in training."""

from __future__ import annotations

import pytest
from conftest import GRPO_TINY, ROOT, build_trainer, read_summary, run_cli
from helpers import tools as helper_tools

TESTS = str(ROOT / "tests")
CALL_ADD = '<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call><|im_end|>'
CALL_EXPLODE = '<tool_call>\n{"name": "explode", "arguments": {"a": 2, "b": 3}}\n</tool_call><|im_end|>'
FINAL = "The sum is 5.<|im_end|>"
ROOM = ["algorithm.max_completion_length=128"]  # a tool call, its result and an answer fit


def script(trainer, first: str, after_tool: str):
    """Replace the model's generation: `first` for a fresh prompt, `after_tool` once a tool result is in it."""
    tok = trainer.processing_class
    calls = []

    def generate(prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        out = []
        for ids in prompt_ids:
            text = after_tool if "<tool_response>" in tok.decode(ids) else first
            out.append(tok(text, add_special_tokens=False)["input_ids"])
        calls.append(len(prompt_ids))
        return out, None

    trainer._generate_single_turn = generate
    return calls


def tool_trainer(compose, tmp_path, *overrides):
    return build_trainer(
        compose,
        tmp_path,
        [*GRPO_TINY, *ROOM, "algorithm.reward_funcs=[helpers.tools.record_answers]", "algorithm.beta=0", *overrides],
    )


def one_round(trainer):
    trainer.model.train()
    helper_tools.SEEN.clear()
    return trainer._generate_and_score_completions(next(iter(trainer.get_train_dataloader())))


def test_tool_results_are_in_the_conversation_but_not_trained_on(compose, tmp_path, tiny_model_dir):
    trainer = tool_trainer(compose, tmp_path, "algorithm.tools=[helpers.tools.add]")
    script(trainer, CALL_ADD, FINAL)
    batch = one_round(trainer)
    tok = trainer.processing_class
    mask = batch["tool_mask"] * batch["completion_mask"]
    for row in range(len(mask)):
        ids = batch["completion_ids"][row][batch["completion_mask"][row].bool()]
        trained = tok.decode(ids[mask[row][: len(ids)].bool()])
        masked = tok.decode(ids[~mask[row][: len(ids)].bool()])
        assert trained.startswith("<tool_call>") and trained.endswith(FINAL), trained  # the model's own tokens
        assert "<tool_response>\n5\n</tool_response>" in masked and "<tool_call>" not in masked, masked
    # the rewards read the model's own text (the tool call's turn has no text of its own)
    assert helper_tools.SEEN[-1] == ["The sum is 5."] * len(mask)
    assert batch["advantages"].abs().sum() == 0  # every answer scored the same
    assert trainer._metrics["train"]["tools/call_frequency"][-1] == 1.0
    assert trainer._metrics["train"]["tools/failure_frequency"][-1] == 0.0


def test_a_tool_that_raises_puts_its_error_in_the_conversation(compose, tmp_path, tiny_model_dir):
    trainer = tool_trainer(compose, tmp_path, "algorithm.tools=[helpers.tools.explode]")
    script(trainer, CALL_EXPLODE, FINAL)
    batch = one_round(trainer)
    tok = trainer.processing_class
    ids = batch["completion_ids"][0][batch["completion_mask"][0].bool()]
    masked = tok.decode(ids[~batch["tool_mask"][0][: len(ids)].bool()])
    assert "{'error': 'the adder broke'}" in masked
    assert trainer._metrics["train"]["tools/failure_frequency"][-1] == 1.0


@pytest.mark.parametrize("max_turns, tool_runs, turns", [(1, 0, 1), (2, 1, 2), (3, 2, 3)])
def test_max_turns_limits_the_model_turns(compose, tmp_path, tiny_model_dir, max_turns, tool_runs, turns):
    trainer = tool_trainer(compose, tmp_path, "algorithm.tools=[helpers.tools.add]", f"algorithm.max_turns={max_turns}")
    generations = script(trainer, CALL_ADD, CALL_ADD)  # the model never stops calling
    batch = one_round(trainer)
    assert len(generations) == turns  # one generation round per turn
    assert trainer._metrics["train"]["tools/call_frequency"][-1] == tool_runs
    tok = trainer.processing_class
    text = tok.decode(batch["completion_ids"][0][batch["completion_mask"][0].bool()])
    assert text.count("<tool_response>") == tool_runs and text.count("<tool_call>") == turns


def test_an_environment_gives_tools_state_and_its_own_reward(compose, tmp_path, tiny_model_dir):
    trainer = build_trainer(
        compose,
        tmp_path,
        [
            *GRPO_TINY,
            *ROOM,
            "algorithm.reward_funcs=[]",
            "algorithm.environment={_target_: helpers.tools.Counter, start: 1}",
        ],
    )
    batch_rows = next(iter(trainer.get_train_dataloader()))
    first = batch_rows[0]
    by = int(first["solution"]) - 1  # the call that brings the count from 1 to the solution
    call = f'<tool_call>\n{{"name": "increase", "arguments": {{"by": {by}}}}}\n</tool_call><|im_end|>'
    script(trainer, call, FINAL)
    trainer.model.train()
    batch = trainer._generate_and_score_completions(batch_rows)
    assert trainer.reward_func_names[-1] == "Counter"
    rewards = trainer._last_gathered_rewards.tolist()
    solved = [float(int(row["solution"]) == by + 1) for row in batch_rows]
    assert rewards == solved and rewards[0] == 1.0
    assert batch["tool_mask"].min() == 0


@pytest.mark.parametrize(
    "override, needle",
    [
        ("algorithm.tools=[helpers.tools.no_docstring]", "tool 'no_docstring' has no docstring"),
        ("algorithm.tools=[helpers.tools.no_hint]", "argument 'a' needs a type hint"),
        ("algorithm.tools=[helpers.tools.undocumented_argument]", "needs an 'Args:' section describing 'b'"),
        ("algorithm.tools=[helpers.tools.missing]", "algorithm.tools[0]: module 'helpers.tools' has no 'missing'"),
        ("algorithm.tools=[helpers.tools.add,helpers.tools.add]", "two tools are named 'add'"),
        ("algorithm.environment=helpers.tools.NoReset", "needs a reset(self, **row) method"),
        ("algorithm.max_turns=3", "no algorithm.tools or algorithm.environment is set"),
    ],
)
def test_a_bad_tool_spec_is_one_line_at_config_time(tmp_path, override, needle):
    proc = run_cli(["algorithm=grpo", override, "--cfg", "job"], cwd=tmp_path, env={"PYTHONPATH": TESTS})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr


def test_calculator_evaluates_arithmetic_and_refuses_the_rest():
    from rlhf_lab.tools.calculator import calculate

    assert calculate("12 + 7") == "19" and calculate("(3 + 4) * 2") == "14" and calculate("7 / 2") == "3.5"
    for bad in ("__import__('os')", "2 ** 99999", "abc"):
        with pytest.raises(ValueError):
            calculate(bad)


def test_a_tool_run_trains_and_evaluates_with_tools_end_to_end(tmp_path, tiny_model_dir):
    proc = run_cli(
        [
            *GRPO_TINY,
            "algorithm.reward_funcs=[accuracy]",
            "algorithm.tools=[rlhf_lab.tools.calculator.calculate]",
            "algorithm.max_turns=2",
            f"hydra.run.dir={tmp_path}/run",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = read_summary(tmp_path / "run")
    assert {"tool_calls", "tool_failures"} <= set(summary["eval_after"])
    assert summary["status"] == "completed"


def test_a_template_without_tools_that_is_not_chatml_is_one_line(tmp_path):
    from rlhf_lab.errors import ModelError
    from rlhf_lab.models.tool_template import prepare_for_tools

    class Plain:
        chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"

        def apply_chat_template(self, messages, **kwargs):
            return "".join(m.get("content", "") for m in messages)

    with pytest.raises(ModelError, match="cannot render tool calls and is not ChatML"):
        prepare_for_tools(Plain(), "my-model")
