"""Adapt reward callables to the trainer: text answers in, checked floats out, failures named."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

from rlhf_lab.data.formats import ROW_SOURCE
from rlhf_lab.errors import RewardError


def completion_text(completion: Any) -> str:
    """TRL hands conversational answers as [{'role': 'assistant', 'content': ...}] (with tools, the assistant's turns
    between the tools' results); rewards get the model's own text, its turns joined by newlines."""
    if isinstance(completion, list):
        return "\n".join(
            m["content"]
            for m in completion
            if m.get("role", "assistant") == "assistant" and isinstance(m.get("content"), str) and m["content"]
        )
    return completion


class NamedReward:
    """One reward as TRL's GRPOTrainer calls it: reward(prompts=, completions=, completion_ids=, **columns)."""

    def __init__(self, name: str, fn: Callable):
        self.__name__ = name
        self.fn = fn

    def __call__(self, prompts, completions, completion_ids=None, **kwargs) -> list[float | None]:
        sources = kwargs.pop(ROW_SOURCE, None) or ["?"] * len(completions)
        for internal in ("log_extra", "log_metric", "environments"):
            kwargs.pop(internal, None)
        texts = [completion_text(c) for c in completions]
        try:
            values = self.fn(completions=texts, prompts=prompts, completion_ids=completion_ids, **kwargs)
        except RewardError:
            raise  # already one line naming the reward (a remote reward the service refused)
        except Exception as exc:  # noqa: BLE001 - any failure of user code is reported with its row
            row = self._failing_row(texts, prompts, completion_ids, kwargs)
            where = f" on row {sources[row]} (answer {texts[row][:60]!r})" if row is not None else ""
            raise RewardError(f"reward {self.__name__!r} raised {type(exc).__name__}: {exc}{where}") from exc
        return self._checked(values, sources)

    def _failing_row(self, texts, prompts, completion_ids, kwargs) -> int | None:
        """Call the reward one answer at a time to find the row that makes it fail."""
        for i in range(len(texts)):
            one = {k: v[i : i + 1] if isinstance(v, list) and len(v) == len(texts) else v for k, v in kwargs.items()}
            try:
                self.fn(
                    completions=texts[i : i + 1],
                    prompts=prompts[i : i + 1],
                    completion_ids=None if completion_ids is None else completion_ids[i : i + 1],
                    **one,
                )
            except Exception:  # noqa: BLE001
                return i
        return None

    def _checked(self, values: Any, sources: list[str]) -> list[float | None]:
        try:
            values = list(values)
        except TypeError:
            raise RewardError(
                f"reward {self.__name__!r} returned {type(values).__name__}, expected a list of floats"
            ) from None
        if len(values) != len(sources):
            raise RewardError(
                f"reward {self.__name__!r} returned {len(values)} values for {len(sources)} answers; "
                "return one per answer"
            )
        out: list[float | None] = []
        for value, source in zip(values, sources):
            if value is None:
                out.append(None)
                continue
            if not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise RewardError(
                    f"reward {self.__name__!r} returned {value!r} on row {source}; expected a finite float or None"
                )
            out.append(float(value))
        return out
