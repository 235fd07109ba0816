"""What each algorithm trains on, from a row in any input format (data/styles.py): the conversational rows TRL reads.

An algorithm names its format in the registry: pairs (prompt, chosen, rejected), kto (prompt, completion, label;
a pair becomes two rows), prompts (the prompt only; answers are generated) or sft (messages ending in the answer).
A converter raises RowProblem naming the field when the row lacks what the algorithm needs. Extra columns are kept
on the converted row (reward functions and multimodal data need them).
"""

from __future__ import annotations

from collections.abc import Callable

from rlhf_lab.data.styles import RowProblem, Sample, message

# Added to every row at load time: "file:line", so later failures (e.g. a reward) can name the row.
ROW_SOURCE = "row_source"

__all__ = ["FORMATS", "ROW_SOURCE", "RowProblem"]


def _answer(sample: Sample) -> list[dict]:
    if sample.answer is None:
        raise sample.no_answer or RowProblem(None, "the row has no answer")
    return sample.answer


def _needs_user(prompt: list[dict], what: str) -> None:
    if not any(m["role"] == "user" for m in prompt):
        raise RowProblem("messages", f"needs a user message before {what}")


def _margin(extras: dict) -> dict:
    if "margin" not in extras:
        return extras
    value = extras["margin"]
    try:
        number = float(value) if isinstance(value, str) else value
    except ValueError:
        number = None
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise RowProblem("margin", f"expected a number (how much better chosen is), got {value!r:.40}")
    return {**extras, "margin": number}


def pairs(sample: Sample) -> list[dict]:
    """DPO/CPO/SimPO/ORPO/RM: a prompt, the chosen answer and the rejected one."""
    chosen = _answer(sample)
    _needs_user(sample.prompt, "the chosen answer")
    if sample.rejected is None:
        raise RowProblem(
            sample.rejected_field,
            f"missing; pairs need the rejected answer as {sample.rejected_field}"
            + (" (this row has a label: KTO reads labelled rows)" if sample.label is not None else ""),
        )
    if sample.rejected == chosen:
        raise RowProblem(sample.rejected_field, "is the same as the chosen answer; a pair needs two different answers")
    return [{**_margin(sample.extras), "prompt": sample.prompt, "chosen": chosen, "rejected": sample.rejected}]


def labelled(sample: Sample) -> list[dict]:
    """KTO: one answer and its label (true = desirable). A pair without a label becomes two rows, the chosen answer
    desirable and the rejected one undesirable."""
    if sample.label is None and sample.rejected is not None:
        pair = pairs(sample)[0]
        rest = {k: v for k, v in pair.items() if k not in ("prompt", "chosen", "rejected")}
        return [
            {**rest, "prompt": pair["prompt"], "completion": pair["chosen"], "label": True},
            {**rest, "prompt": pair["prompt"], "completion": pair["rejected"], "label": False},
        ]
    if sample.answer is None:
        missing = sample.no_answer or RowProblem(None, "the row has none")
        raise RowProblem(missing.field, f"KTO needs the answer that the label judges: {missing.message}")
    if sample.label is None:
        raise RowProblem("label", "missing; KTO rows need label: true (desirable) or false (undesirable)")
    return [{**sample.extras, "prompt": sample.prompt, "completion": sample.answer, "label": sample.label}]


def prompts(sample: Sample) -> list[dict]:
    """GRPO/PPO: the prompt, ending with the user's query; answers in the row are not used (the policy writes its
    own). Extra columns (solution, ...) go to the rewards."""
    if not sample.prompt or sample.prompt[-1]["role"] != "user":
        raise RowProblem("messages", "must end with the user's query (optionally followed by one assistant answer)")
    return [{**sample.extras, "prompt": sample.prompt}]


def sft(sample: Sample) -> list[dict]:
    """GKD: messages ending in the assistant's answer. Query-only rows are accepted with has_answer false (usable
    when the answers are generated: seq_kd or lmbda=1; the algorithm checks)."""
    if sample.label is False:
        raise RowProblem("label", "is false: the answer is marked undesirable, and GKD would learn to imitate it")
    _needs_user(sample.prompt, "the answer")
    if sample.answer is None and sample.prompt[-1]["role"] != "user":
        raise RowProblem("messages", "must end with the assistant's answer or with the user's query")
    has_answer = sample.answer is not None
    # TRL's chat collator takes all but the last message as the prompt, so query-only rows get an empty answer
    # slot (never trained on: those batches are generated).
    answer = sample.answer if has_answer else [message("assistant", "")]
    return [{**sample.extras, "messages": [*sample.prompt, *answer], "has_answer": has_answer}]


# format name -> converter of one sample into training rows. Algorithms name their format in the registry.
FORMATS: dict[str, Callable[[Sample], list[dict]]] = {
    "pairs": pairs,
    "kto": labelled,
    "prompts": prompts,
    "sft": sft,
}
