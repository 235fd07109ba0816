"""Input formats: the row layouts users already have, each read into one Sample (prompt, answers, label, extras).

- messages: ms-swift's `messages` (+ `rejected_response` or `rejected_messages`, `label`, a top-level `system`);
- sharegpt: `conversations` of `from`/`value` turns (human, gpt, system, function_call, observation), read the
  way ms-swift reads them;
- alpaca: `instruction`, `input`, `output` (+ `system`, `history`, `rejected_response`, `label`);
- query_response: `query`, `response` (+ `history`, `system`, `rejected_response`, `label`);
- trl: TRL's preference (`prompt`/`chosen`/`rejected`, plain strings or conversations, the prompt implicit in
  `chosen`/`rejected` when they are whole conversations), unpaired (`prompt`/`completion`/`label`),
  prompt-completion and prompt-only rows;
- hh_rlhf: `chosen`/`rejected` transcripts of "\\n\\nHuman: ..." and "\\n\\nAssistant: ..." turns sharing a prefix.

Plain strings become a user turn and an assistant answer, and the model's chat template is applied to them, as
ms-swift does. A field that must be a list may also be given as JSON text (as CSV files hold it).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlhf_lab.errors import DataError

ROLES = ("system", "user", "assistant", "tool", "tool_call", "tool_response")
# Other role names in the wild, as ms-swift maps them.
ROLE_ALIASES = {
    "human": "user",
    "gpt": "assistant",
    "bot": "assistant",
    "function_call": "tool_call",
    "function_response": "tool_response",
    "observation": "tool_response",
    "observations": "tool_response",
}
MESSAGE_KEYS = ("messages", "conversations", "conversation")
SYSTEM_KEYS = ("system", "system_prompt")
HH_TURN = re.compile(r"\n\n(Human|Assistant): ?")


class RowProblem(Exception):
    def __init__(self, field: str | None, message: str):
        self.field = field
        self.message = message
        super().__init__(message)


@dataclass
class Sample:
    """One row in a common shape. `answer` is the chosen (or only) answer, as messages after the prompt.
    `no_answer` is the problem to report when an algorithm needs an answer and the row has none, worded for the
    row's own format; `rejected_field` names where a rejected answer would go."""

    prompt: list[dict]
    answer: list[dict] | None = None
    rejected: list[dict] | None = None
    label: bool | None = None
    extras: dict = field(default_factory=dict)
    no_answer: RowProblem | None = None
    rejected_field: str = "rejected_response"


# --- shared pieces --------------------------------------------------------------------------------------------------


def structured(value: Any, where: str) -> Any:
    """A list given as text (JSON, or a Python literal as ms-swift also accepts) becomes the list."""
    if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            try:
                return ast.literal_eval(value)
            except (ValueError, SyntaxError):
                raise RowProblem(where, f"is text that is neither JSON nor a Python literal: {value!r:.60}") from None
    return value


def message(role: str, content: str) -> dict:
    return {"role": role, "content": content}


def conversation(value: Any, where: str) -> list[dict]:
    """A checked list of {role, content} messages; ShareGPT's from/value and role names are mapped."""
    value = structured(value, where)
    if not isinstance(value, list) or not value:
        raise RowProblem(where, f"expected a non-empty list of {{role, content}} objects, got {value!r:.60}")
    if isinstance(value[0], dict) and not ({"role", "from", "content", "value"} & set(value[0])):
        return _pair_turns(value, where)
    out = []
    for i, m in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(m, dict):
            raise RowProblem(at, f"expected an object with role and content, got {m!r:.60}")
        role = m.get("role", m.get("from"))
        role = ROLE_ALIASES.get(role, role) if isinstance(role, str) else role
        if role not in ROLES:
            raise RowProblem(f"{at}.role", f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
        content = m.get("content", m.get("value"))
        if content is None:
            raise RowProblem(f"{at}.content", "is null or missing; every message needs text")
        if not isinstance(content, str):
            raise RowProblem(f"{at}.content", f"expected a string, got {type(content).__name__}")
        out.append(message(role, content))
    return out


def _pair_turns(value: list, where: str) -> list[dict]:
    """ShareGPT's older layout: [{"human": q, "assistant": a}, ...]."""
    out = []
    for i, turn in enumerate(value):
        user = turn.get("human", turn.get("user")) if isinstance(turn, dict) else None
        answer = (
            next((turn[k] for k in ("assistant", "gpt", "bot") if k in turn), None) if isinstance(turn, dict) else None
        )
        if not isinstance(user, str) or not isinstance(answer, str):
            raise RowProblem(
                f"{where}[{i}]", f"expected role/content messages or human/assistant turns, got {turn!r:.60}"
            )
        out += [message("user", user), message("assistant", answer)]
    return out


def text(value: Any, where: str, empty_ok: bool = False) -> str:
    if not isinstance(value, str):
        raise RowProblem(where, f"expected a string, got {value!r:.60}")
    if not empty_ok and not value.strip():
        raise RowProblem(where, "is empty")
    return value


def label(value: Any) -> bool:
    """KTO's label: a boolean, or 1/0 and true/false as CSV files and other tools write them."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise RowProblem("label", f"expected true (desirable) or false (undesirable), got {value!r:.40}")


def with_system(messages: list[dict], row: dict) -> list[dict]:
    """A top-level system column becomes the first message, unless the conversation has its own."""
    system = next((row[k] for k in SYSTEM_KEYS if row.get(k) is not None), None)
    if system is None or messages[0]["role"] == "system":
        return messages
    return [message("system", text(system, "system", empty_ok=True)), *messages]


def history_messages(row: dict) -> list[dict]:
    """ms-swift's history: [[query, response], ...] before the current query."""
    history = structured(row.get("history"), "history") or []
    if not isinstance(history, list):
        raise RowProblem("history", f"expected a list of [query, response] pairs, got {history!r:.60}")
    out = []
    for i, turn in enumerate(history):
        if not isinstance(turn, (list, tuple)) or len(turn) != 2:
            raise RowProblem(f"history[{i}]", f"expected a [query, response] pair, got {turn!r:.60}")
        out += [
            message("user", text(turn[0], f"history[{i}][0]")),
            message("assistant", text(turn[1], f"history[{i}][1]")),
        ]
    return out


def split_pair(chosen: list[dict], rejected: list[dict], where: str) -> tuple[list[dict], list[dict], list[dict]]:
    """Two whole conversations -> (shared prompt, chosen answer, rejected answer): the prompt is their longest
    common prefix, as TRL's extract_prompt takes it; both answers must start with an assistant turn."""
    k = 0
    while k < min(len(chosen), len(rejected)) and chosen[k] == rejected[k]:
        k += 1
    if k == len(chosen) or k == len(rejected):
        raise RowProblem(where, "the chosen and rejected conversations do not differ after their shared part")
    if chosen[k]["role"] != "assistant" or rejected[k]["role"] != "assistant":
        raise RowProblem(
            where,
            f"the chosen and rejected conversations must part at an assistant answer; they part at "
            f"a {chosen[k]['role']!r} turn (message {k})",
        )
    return chosen[:k], chosen[k:], rejected[k:]


def extras(row: dict, used: tuple[str, ...]) -> dict:
    """The columns a format does not read itself: kept on the row (rewards read them, e.g. solution)."""
    return {k: v for k, v in row.items() if k not in used}


def _rejected_answer(row: dict, sample: Sample) -> None:
    if "rejected_response" in row:
        rejected = row["rejected_response"]
        if not isinstance(rejected, str) or not rejected.strip():
            raise RowProblem("rejected_response", f"expected a non-empty string, got {rejected!r:.60}")
        sample.rejected = [message("assistant", rejected)]


def _ends_with_answer(messages: list[dict], where: str, sample: Sample) -> None:
    """The last assistant turn is the answer; a conversation ending with the user's query has none."""
    if messages[-1]["role"] == "assistant":
        sample.prompt, sample.answer = messages[:-1], messages[-1:]
    else:
        sample.prompt = messages
        sample.no_answer = RowProblem(
            f"{where}[{len(messages) - 1}].role",
            f"the last message must be the assistant's answer, got role {messages[-1]['role']!r}",
        )


# --- the formats ----------------------------------------------------------------------------------------------------


def messages_format(row: dict) -> Sample:
    key = next((k for k in MESSAGE_KEYS if k in row), "messages")
    if key not in row:
        raise RowProblem("messages", f"missing; the row has {sorted(row) or 'no fields'}")
    messages = with_system(conversation(row[key], key), row)
    sample = Sample(prompt=[])
    used = (*MESSAGE_KEYS, *SYSTEM_KEYS, "rejected_response", "rejected_messages", "label")
    if "rejected_messages" in row:
        rejected = with_system(conversation(row["rejected_messages"], "rejected_messages"), row)
        sample.prompt, sample.answer, sample.rejected = split_pair(messages, rejected, "rejected_messages")
        sample.rejected_field = "rejected_messages"
    else:
        _ends_with_answer(messages, key, sample)
        _rejected_answer(row, sample)
    if "label" in row:
        sample.label = label(row["label"])
    sample.extras = extras(row, used)
    return sample


def _query_turns(row: dict, query: str, answer_key: str) -> Sample:
    """alpaca and query/response rows: system, history, the query, and the answer when the row has one."""
    messages = with_system([*history_messages(row), message("user", query)], row)
    sample = Sample(prompt=messages)
    answer = row.get(answer_key)
    if isinstance(answer, list) and answer:  # ms-swift takes the first of several responses
        answer = answer[0]
    if answer is not None:
        sample.answer = [message("assistant", text(answer, answer_key))]
    else:
        sample.no_answer = RowProblem(answer_key, "missing; this algorithm trains on the row's answer")
    _rejected_answer(row, sample)
    if "label" in row:
        sample.label = label(row["label"])
    return sample


def alpaca_format(row: dict) -> Sample:
    instruction = row.get("instruction")
    input_ = row.get("input")
    parts = [text(v, k, empty_ok=True) for k, v in (("instruction", instruction), ("input", input_)) if v is not None]
    query = "\n".join(p for p in parts if p)
    if not query:
        raise RowProblem("instruction", "missing or empty (and no input); alpaca rows need an instruction")
    sample = _query_turns(row, query, "output")
    sample.extras = extras(
        row, ("instruction", "input", "output", "history", *SYSTEM_KEYS, "rejected_response", "label")
    )
    return sample


def query_response_format(row: dict) -> Sample:
    if "query" not in row:
        raise RowProblem("query", f"missing; the row has {sorted(row) or 'no fields'}")
    sample = _query_turns(row, text(row["query"], "query"), "response")
    sample.extras = extras(row, ("query", "response", "history", *SYSTEM_KEYS, "rejected_response", "label"))
    return sample


def _is_conversation(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict)


def _turns(value: Any, where: str, role: str) -> list[dict]:
    """TRL's fields: a plain string (one turn of `role`) or a conversation."""
    value = structured(value, where)
    return conversation(value, where) if isinstance(value, list) else [message(role, text(value, where))]


def trl_format(row: dict) -> Sample:
    chosen, rejected = row.get("chosen"), row.get("rejected")
    sample = Sample(prompt=[], rejected_field="rejected")
    chosen_conv = _is_conversation(structured(chosen, "chosen")) if chosen is not None else False
    prompt = row.get("prompt")
    if (
        chosen is not None
        and rejected is not None
        and chosen_conv
        and not _is_conversation(structured(prompt, "prompt"))
    ):
        # The prompt is implicit in whole conversations (a string prompt column, as in UltraFeedback, repeats it).
        sample.prompt, sample.answer, sample.rejected = split_pair(
            conversation(chosen, "chosen"), conversation(rejected, "rejected"), "rejected"
        )
    else:
        if prompt is None:
            raise RowProblem("prompt", f"missing; the row has {sorted(row) or 'no fields'}")
        sample.prompt = _turns(prompt, "prompt", "user")
        answer_key = "chosen" if chosen is not None else "completion"
        if row.get(answer_key) is not None:
            sample.answer = _turns(row[answer_key], answer_key, "assistant")
        else:
            sample.no_answer = RowProblem(
                "completion", "missing; this algorithm trains on the row's answer (completion, or chosen and rejected)"
            )
        if rejected is not None:
            sample.rejected = _turns(rejected, "rejected", "assistant")
    if row.get("label") is not None:
        sample.label = label(row["label"])
    sample.extras = extras(row, ("prompt", "chosen", "rejected", "completion", "label"))
    return sample


def hh_turns(transcript: Any, where: str) -> list[dict]:
    """'\\n\\nHuman: q\\n\\nAssistant: a ...' -> messages."""
    transcript = text(transcript, where)
    pieces = HH_TURN.split(transcript)
    if pieces[0].strip() or len(pieces) < 3:
        raise RowProblem(
            where,
            f"expected a transcript of '\\n\\nHuman: ...' and '\\n\\nAssistant: ...' turns, got {transcript!r:.60}",
        )
    return [
        message("user" if who == "Human" else "assistant", said.strip())
        for who, said in zip(pieces[1::2], pieces[2::2])
    ]


def hh_rlhf_format(row: dict) -> Sample:
    for key in ("chosen", "rejected"):
        if key not in row:
            raise RowProblem(key, "missing; HH-RLHF rows need chosen and rejected transcripts")
    sample = Sample(prompt=[], rejected_field="rejected")
    sample.prompt, sample.answer, sample.rejected = split_pair(
        hh_turns(row["chosen"], "chosen"), hh_turns(row["rejected"], "rejected"), "rejected"
    )
    sample.extras = extras(row, ("chosen", "rejected"))
    return sample


STYLES: dict[str, Callable[[dict], Sample]] = {
    "messages": messages_format,
    "sharegpt": messages_format,
    "alpaca": alpaca_format,
    "query_response": query_response_format,
    "trl": trl_format,
    "hh_rlhf": hh_rlhf_format,
}


def detect(row: dict, shown: str) -> str:
    """The format of a source, from its first row's columns (and, for chosen/rejected strings, their text)."""
    columns = set(row)
    conversations = set(MESSAGE_KEYS) & columns
    if conversations and {"rejected_response", "rejected_messages"} & columns:
        return "messages" if "messages" in columns else "sharegpt"
    if {"chosen", "rejected"} <= columns:
        chosen = row["chosen"]
        if "prompt" not in columns and isinstance(chosen, str) and HH_TURN.match(chosen):
            return "hh_rlhf"
        return "trl"
    if "messages" in columns:
        return "messages"
    if conversations:
        return "sharegpt"
    if "instruction" in columns:
        return "alpaca"
    if "query" in columns:
        return "query_response"
    if "prompt" in columns:
        return "trl"
    raise DataError(
        shown,
        f"cannot tell the row format from the columns {sorted(columns)}; rlhf_lab reads messages, conversations, "
        "instruction/input/output, query/response, prompt/chosen/rejected, prompt/completion/label and HH-RLHF "
        "chosen/rejected transcripts; rename columns with dataset.columns={yours: prompt, ...} or set dataset.format",
    )
