"""ms-swift row formats: validate each raw row and convert it to the conversational form TRL reads.

A format is a function (raw row) -> normalized row that raises RowProblem naming the field.
Extra columns are kept on the normalized row (reward functions and multimodal data need them).
"""

from __future__ import annotations

from typing import Any, Callable

from rlhf_lab.data.readers import _BadJson

ROLES = ("system", "user", "assistant", "tool", "tool_call", "tool_response")
# Added to every row at load time: "file:line", so later failures (e.g. a reward) can name the row.
ROW_SOURCE = "row_source"


class RowProblem(Exception):
    def __init__(self, field: str | None, message: str):
        self.field = field
        self.message = message
        super().__init__(message)


def _messages(row: dict) -> list[dict]:
    if "messages" not in row:
        raise RowProblem("messages", f"missing; the row has {sorted(row) or 'no fields'}")
    messages = row["messages"]
    if not isinstance(messages, list) or not messages:
        raise RowProblem("messages", f"expected a non-empty list of {{role, content}} objects, got {messages!r:.60}")
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise RowProblem(where, f"expected an object with role and content, got {m!r:.60}")
        if m.get("role") not in ROLES:
            raise RowProblem(f"{where}.role", f"unknown role {m.get('role')!r}; expected one of {', '.join(ROLES)}")
        if "content" not in m or m["content"] is None:
            raise RowProblem(f"{where}.content", "is null or missing; every message needs text")
        if not isinstance(m["content"], str):
            raise RowProblem(f"{where}.content", f"expected a string, got {type(m['content']).__name__}")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _as_object(raw: Any) -> dict:
    if isinstance(raw, _BadJson):
        raise RowProblem(None, raw.message)
    if not isinstance(raw, dict):
        raise RowProblem(None, f"expected a JSON object, got {type(raw).__name__}")
    return raw


def pairs(raw: Any) -> dict:
    """DPO/CPO/SimPO/ORPO/RM rows: messages whose last assistant turn is chosen, plus rejected_response."""
    row = _as_object(raw)
    messages = _messages(row)
    if messages[-1]["role"] != "assistant":
        raise RowProblem(
            f"messages[{len(messages) - 1}].role",
            f"the last message must be the assistant's chosen answer, got role {messages[-1]['role']!r}",
        )
    if not any(m["role"] == "user" for m in messages[:-1]):
        raise RowProblem("messages", "needs a user message before the chosen answer")
    if "rejected_response" not in row:
        raise RowProblem("rejected_response", "missing; pairs need the rejected answer as rejected_response")
    rejected = row["rejected_response"]
    if not isinstance(rejected, str) or not rejected.strip():
        raise RowProblem("rejected_response", f"expected a non-empty string, got {rejected!r:.60}")
    if "margin" in row and (isinstance(row["margin"], bool) or not isinstance(row["margin"], (int, float))):
        raise RowProblem("margin", f"expected a number (how much better chosen is), got {row['margin']!r:.40}")
    extras = {k: v for k, v in row.items() if k not in ("messages", "rejected_response")}
    return {
        **extras,
        "prompt": messages[:-1],
        "chosen": [messages[-1]],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


def labelled(raw: Any) -> list[dict]:
    """KTO rows: messages whose last assistant turn is the answer, plus a JSON boolean label
    (true = desirable). A pairs row (rejected_response) becomes two rows: chosen true, rejected false."""
    row = _as_object(raw)
    if "label" not in row and "rejected_response" in row:
        pair = pairs(row)
        extras = {k: v for k, v in pair.items() if k not in ("prompt", "chosen", "rejected")}
        return [
            {**extras, "prompt": pair["prompt"], "completion": pair["chosen"], "label": True},
            {**extras, "prompt": pair["prompt"], "completion": pair["rejected"], "label": False},
        ]
    messages = _messages(row)
    if messages[-1]["role"] != "assistant":
        raise RowProblem(
            f"messages[{len(messages) - 1}].role",
            f"the last message must be the assistant's answer that the label judges, got role {messages[-1]['role']!r}",
        )
    if "label" not in row:
        raise RowProblem("label", "missing; KTO rows need label: true (desirable) or false (undesirable)")
    if not isinstance(row["label"], bool):
        raise RowProblem("label", f"expected a JSON boolean true/false, got {row['label']!r:.40}")
    extras = {k: v for k, v in row.items() if k not in ("messages", "label")}
    return [{**extras, "prompt": messages[:-1], "completion": [messages[-1]], "label": row["label"]}]


def prompts(raw: Any) -> dict:
    """GRPO/PPO rows: messages ending in the user's query. A trailing assistant turn (e.g. from an SFT or pairs
    file) is dropped: the policy writes its own answers. Extra columns (solution, ...) go to the rewards."""
    row = _as_object(raw)
    messages = _messages(row)
    if messages[-1]["role"] == "assistant":
        messages = messages[:-1]
    if not messages or messages[-1]["role"] != "user":
        raise RowProblem("messages", "must end with the user's query (optionally followed by one assistant answer)")
    extras = {k: v for k, v in row.items() if k not in ("messages", "rejected_response", "prompt")}
    return {**extras, "prompt": messages}


def sft(raw: Any) -> dict:
    """GKD rows: messages ending in the assistant's answer. Query-only rows are accepted with has_answer false
    (usable when the answers are generated: seq_kd or lmbda=1; the algorithm checks)."""
    row = _as_object(raw)
    messages = _messages(row)
    has_answer = messages[-1]["role"] == "assistant"
    if not has_answer and messages[-1]["role"] != "user":
        raise RowProblem("messages", "must end with the assistant's answer or with the user's query")
    if not any(m["role"] == "user" for m in messages):
        raise RowProblem("messages", "needs a user message")
    extras = {k: v for k, v in row.items() if k != "messages"}
    # TRL's chat collator takes all but the last message as the prompt, so query-only rows get an empty answer
    # slot (never trained on: those batches are generated).
    full = messages if has_answer else [*messages, {"role": "assistant", "content": ""}]
    return {**extras, "messages": full, "has_answer": has_answer}


def _one(convert: Callable[[Any], dict]) -> Callable[[Any], list[dict]]:
    return lambda raw: [convert(raw)]


# format name -> converter of one raw row into training rows. Algorithms name their format in the registry.
FORMATS: dict[str, Callable[[Any], list[dict]]] = {
    "pairs": _one(pairs),
    "kto": labelled,
    "prompts": _one(prompts),
    "sft": _one(sft),
}
