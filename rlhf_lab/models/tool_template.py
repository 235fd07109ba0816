"""Tool calling for models whose chat template cannot render it (SmolLM2 and the tiny test model among them): a
ChatML template with tools, in the <tool_call> JSON form Qwen and Hermes models use, and the response parser that
reads such calls back. Models whose own template renders tool calls keep it."""

from __future__ import annotations

import re

from rlhf_lab.errors import ModelError

# Tools are listed in the system turn; the model calls one with <tool_call>{"name": ..., "arguments": {...}}
# </tool_call>; consecutive tool results come back in one user turn, each in <tool_response>.
_TEMPLATE = r"""
{%- if messages and messages[0]['role'] == 'system' -%}
  {%- set system = messages[0]['content'] -%}{%- set rest = messages[1:] -%}
{%- else -%}
  {%- set system = DEFAULT_SYSTEM -%}{%- set rest = messages -%}
{%- endif -%}
{{- '<|im_start|>system\n' + system -}}
{%- if tools -%}
  {{- '\n\nYou can call these tools (their signatures are inside <tools></tools>):\n<tools>' -}}
  {%- for tool in tools -%}{{- '\n' + (tool | tojson) -}}{%- endfor -%}
  {{- '\n</tools>\n\nTo call a tool, write its name and arguments as one JSON object inside <tool_call></tool_call>:\n'
      + '<tool_call>\n{"name": <tool name>, "arguments": <the arguments as a JSON object>}\n</tool_call>' -}}
{%- endif -%}
{{- '<|im_end|>\n' -}}
{%- for message in rest -%}
  {%- if message['role'] == 'tool' -%}
    {%- if loop.first or rest[loop.index0 - 1]['role'] != 'tool' -%}{{- '<|im_start|>user' -}}{%- endif -%}
    {%- set content = message['content'] if message['content'] is string else (message['content'] | tojson) -%}
    {{- '\n<tool_response>\n' + content + '\n</tool_response>' -}}
    {%- if loop.last or rest[loop.index0 + 1]['role'] != 'tool' -%}{{- '<|im_end|>\n' -}}{%- endif -%}
  {%- elif message['role'] == 'assistant' -%}
    {{- '<|im_start|>assistant\n' + (message['content'] or '') -}}
    {%- for call in (message['tool_calls'] if message['tool_calls'] is defined and message['tool_calls'] else []) -%}
      {%- set f = call['function'] if call['function'] is defined else call -%}
      {%- if message['content'] or not loop.first -%}{{- '\n' -}}{%- endif -%}
      {%- set arguments = f['arguments'] if f['arguments'] is string else (f['arguments'] | tojson) -%}
      {{- '<tool_call>\n{"name": "' + f['name'] + '", "arguments": ' + arguments + '}\n</tool_call>' -}}
    {%- endfor -%}
    {{- '<|im_end|>\n' -}}
  {%- else -%}
    {{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' -}}
  {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}
"""

_DEFAULT_SYSTEM = re.compile(r"<\|im_start\|>system(?:\n|\\n)(.*?)<\|im_end\|>")


def chatml_tool_template(original: str) -> str:
    """The tool template, keeping the default system message of the model's own template (if it has one)."""
    match = _DEFAULT_SYSTEM.search(original)
    default = match.group(1) if match else "You are a helpful assistant."
    return _TEMPLATE.replace("DEFAULT_SYSTEM", repr(default))


def prepare_for_tools(tokenizer, model_name: str) -> None:
    """Make the tokenizer render tools and parse tool calls, or say in one line why it cannot."""
    from trl.chat_template_utils import add_response_schema, supports_tool_calling

    template = tokenizer.chat_template or ""
    if supports_tool_calling(tokenizer):
        if getattr(tokenizer, "response_template", None) is None:
            try:
                add_response_schema(tokenizer)
            except ValueError:
                raise ModelError(
                    f"model.name_or_path={model_name}: its chat template renders tool calls, but rlhf_lab does not "
                    "know how to read them back from its answers; use a model family with a known tool format "
                    "(Qwen2.5, Qwen3, Llama 3.1/3.2, GLM-4, ...) or a ChatML model"
                ) from None
        return
    if "<|im_start|>" not in template:
        raise ModelError(
            f"model.name_or_path={model_name}: its chat template cannot render tool calls and is not ChatML "
            "(<|im_start|>), so rlhf_lab cannot give it one; use a model whose template supports tools "
            "(Qwen2.5, Qwen3, Llama 3.1) or a ChatML model (SmolLM2)"
        )
    from trl.chat_template_utils import qwen3_template

    tokenizer.chat_template = chatml_tool_template(template)
    tokenizer.response_template = qwen3_template  # the same <tool_call> JSON form
