"""Held-out answers with tool calls: greedy turns, each tool call run and its result put back into the conversation,
until the model answers without calling a tool, runs out of max_turns or of max_completion_length tokens (its own
tokens and the tool results', as in training). A failing tool call becomes its error in the conversation, as in
training."""

from __future__ import annotations

import asyncio
import inspect

import torch

from rlhf_lab.evaluation.online import generate_answers


def _methods(environment) -> list:
    from rlhf_lab.algorithms.grpo.tools import environment_tools

    return [] if environment is None else [getattr(environment, n) for n in environment_tools(type(environment))]


def _call(tools: dict, call: dict) -> tuple[str, object, bool]:
    """(tool name, result or {'error': ...}, whether it failed): TRL's semantics for a tool call."""
    function = call.get("function", {}) if call.get("type") == "function" else {}
    name = function.get("name", call.get("name", "unknown"))
    if call.get("type") != "function":
        return name, {"error": f"Unsupported tool call type: {call.get('type')}"}, True
    try:
        if name not in tools:
            raise ValueError(f"Tool {name} not found.")
        result = tools[name](**function.get("arguments", {}))
        if inspect.iscoroutine(result):  # an async tool (TRL runs those on its event loop)
            result = asyncio.run(result)
        return name, result, False
    except Exception as e:  # noqa: BLE001 - the model's call failed: it reads the error, as in training
        return name, {"error": str(e)}, True


@torch.inference_mode()
def tool_answers(model, tokenizer, rows, tools, env_factory, max_new_tokens, max_turns, batch_size, bf16):
    """(each answer's messages, its generated token ids, the environments, {tool_calls, tool_failures} per answer)."""
    from trl.chat_template_utils import parse_response

    n = len(rows)
    environments = [env_factory() if env_factory is not None else None for _ in rows]
    prompts = []
    for row, environment in zip(rows, environments):
        prompt = list(row["prompt"])
        if environment is not None:
            observation = environment.reset(**row)
            if isinstance(observation, str):
                prompt[-1] = {**prompt[-1], "content": prompt[-1]["content"] + observation}
        prompts.append(prompt)
    row_tools = [list(tools) + _methods(e) for e in environments]
    schema = row_tools[0] or None  # every row renders the same signatures (environments are of one class)

    conversations: list[list[dict]] = [[] for _ in rows]
    generated: list[list[int]] = [[] for _ in rows]

    def rendered(i: int) -> list[int]:
        """The tokens of answer i's prompt and conversation so far, ready for its next turn."""
        return tokenizer.apply_chat_template(
            prompts[i] + conversations[i], tools=schema, add_generation_prompt=True, tokenize=True, return_dict=False
        )

    prompt_lengths = [len(rendered(i)) for i in range(n)]
    used = [0] * n
    calls = failures = 0
    active, turn = list(range(n)), 0
    while active and (max_turns is None or turn < max_turns):
        budget = max(max_new_tokens - used[i] for i in active)
        _, outs = generate_answers(
            model, tokenizer, [prompts[i] + conversations[i] for i in active], budget, batch_size, bf16, tools=schema
        )
        still = []
        for i, ids in zip(active, outs):
            ids = ids[: max_new_tokens - used[i]]
            prefix = rendered(i)
            message = parse_response(tokenizer, ids, prefix=prefix, tools=row_tools[i])
            conversations[i].append(message)
            generated[i] += ids
            used[i] = len(prefix) - prompt_lengths[i] + len(ids)
            if not message.get("tool_calls") or used[i] >= max_new_tokens:
                continue
            by_name = {t.__name__: t for t in row_tools[i]}
            for call in message["tool_calls"]:
                name, result, failed = _call(by_name, call)
                calls += 1
                failures += failed
                content = result if isinstance(result, list) else str(result)
                conversations[i].append({"role": "tool", "name": name, "content": content})
            used[i] = len(rendered(i)) - prompt_lengths[i]
            if used[i] < max_new_tokens:
                still.append(i)
        active, turn = still, turn + 1
    return conversations, generated, environments, {"tool_calls": calls / n, "tool_failures": failures / n}
