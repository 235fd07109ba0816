"""An LLM judge as a reward: each answer is put to a model behind an OpenAI-compatible chat completions endpoint
(vLLM, SGLang, llama.cpp's server, OpenAI itself) with a prompt template, and the first number of its reply is the
reward. A reply without a number leaves the answer unscored (None).

    algorithm:
      reward_funcs:
        - _target_: rlhf_lab.rewards.judge.LLMJudge
          base_url: http://judge-host:8000/v1
          model: Qwen/Qwen3-8B
          template: "Score the answer to the question from 0 to 10. Question: {prompt} Answer: {completion} Score:"
          max_score: 10          # rewards then run from 0 to 1

The template may name {prompt} (the last user message), {completion} and any dataset column ({solution}); the
columns it names are checked on every row before a model loads. The API key is read from the environment variable
named by api_key_env when the judge is called, so it is never part of the run's config, summary or logs: the
recommended way to give it a key (every process that scores, worker processes and `eval` included, reads it there).
A key given through the config instead (``${oc.env:VAR}`` in a reward of your own) reaches the reward and is masked
in the run's records (rlhf_lab/config/secrets.py).
"""

from __future__ import annotations

import os
import re
import string

from rlhf_lab.errors import ConfigError
from rlhf_lab.rewards.http import Retrying, ServiceRefused, post_json
from rlhf_lab.rewards.remote import RemoteReward

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def prompt_text(prompt) -> str:
    """The question a prompt asks: the last user message of a chat, or the text itself."""
    if isinstance(prompt, list):
        users = [m.get("content") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        text = users[-1] if users else ""
        if isinstance(text, list):  # multimodal content parts: their text
            text = " ".join(part.get("text", "") for part in text if isinstance(part, dict))
        return str(text)
    return str(prompt)


def first_number(reply: str) -> float | None:
    match = _NUMBER.search(reply or "")
    return float(match.group()) if match else None


class LLMJudge(RemoteReward):
    __name__ = "llm_judge"

    def __init__(
        self,
        base_url: str,
        model: str,
        template: str,
        max_score: float | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        temperature: float = 0.0,
        max_tokens: int = 16,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 1.0,
        concurrency: int = 8,
        name: str = "llm_judge",
    ):
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f}
        if "completion" not in fields:
            raise ConfigError(
                None, f"the judge's template must contain {{completion}} (the answer judged); got {template!r:.80}"
            )
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(None, f"the judge's base_url must start with http:// or https://, got {base_url!r}")
        if max_score is not None and max_score <= 0:
            raise ConfigError(None, f"the judge's max_score must be > 0, got {max_score}")
        super().__init__(Retrying(timeout, retries, backoff), concurrency, batch_size=1)
        self.__name__ = name
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.template = template
        self.max_score = max_score
        self.api_key_env = api_key_env
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.needs_columns = tuple(sorted(fields - {"prompt", "completion"}))

    def score_chunk(self, prompts, completions, columns):
        return [
            self._judge(prompt, completion, {k: v[i] for k, v in columns.items()})
            for i, (prompt, completion) in enumerate(zip(prompts, completions))
        ]

    def _judge(self, prompt, completion: str, row: dict) -> float | None:
        text = self.template.format(prompt=prompt_text(prompt), completion=completion, **row)
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": text}],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        answer = post_json(self.url, body, self.policy, headers)
        try:
            reply = answer["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise ServiceRefused(f"{self.url} answered {str(answer)[:120]}, not a chat completion") from None
        score = first_number(reply)
        if score is None:
            return None
        return score / self.max_score if self.max_score else score
