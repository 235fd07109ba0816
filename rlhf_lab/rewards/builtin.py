"""Built-in reward functions, each following the custom-reward contract (see rewards/custom.py):

    reward(completions: list[str], **kwargs) -> list[float | None]

kwargs carry the dataset's extra columns (e.g. `solution`), `completion_ids` (token ids of each answer) and
`prompts`. None means "cannot score this answer" and keeps it out of the group baseline.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
# ms-swift's format: a think block, then an answer block, and nothing after it.
_THINK_ANSWER = re.compile(r"^\s*<think>.*?</think>\s*<answer>.*?</answer>\s*$", re.DOTALL)


def answer_text(completion: str) -> str:
    """The part of an answer that is checked: the inside of <answer>...</answer> if present, else all of it."""
    match = _ANSWER.search(completion)
    return match.group(1) if match else completion


def gold_text(solution) -> str:
    """The part of a solution that holds the answer: what follows the last '####' in GSM8K-style worked solutions
    (whose working also holds other numbers), else all of it."""
    text = str(solution)
    return text.rpartition("####")[2].strip() if "####" in text else text


def is_correct(completion: str, solution: str) -> bool | None:
    """math-verify's equivalence of the answer and the solution (LaTeX, \\boxed{} or a plain expression, the
    last one found; a GSM8K '#### N' line when present); None when the solution itself cannot be parsed."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    extraction = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    gold = parse(gold_text(solution), extraction_config=extraction)
    if not gold:
        return None
    return bool(verify(gold, parse(answer_text(completion), extraction_config=extraction)))


class Accuracy:
    """1 when the answer equals `solution` mathematically, else 0 (None when the solution does not parse)."""

    __name__ = "accuracy"
    needs_columns = ("solution",)

    def __call__(self, completions: list[str], solution: list[str], **kwargs) -> list[float | None]:
        out = []
        for completion, sol in zip(completions, solution, strict=True):
            correct = is_correct(completion, sol)
            out.append(None if correct is None else float(correct))
        return out


class Format:
    """1 when the answer is `<think>...</think><answer>...</answer>` and nothing else, else 0."""

    __name__ = "format"
    needs_columns = ()

    def __call__(self, completions: list[str], **kwargs) -> list[float]:
        return [1.0 if _THINK_ANSWER.match(c) else 0.0 for c in completions]


class Cosine:
    """Accuracy scaled by length on a cosine: right answers earn more when short, wrong ones lose less when long.

    r(L) = lo + (hi - lo) * (1 + cos(pi * L / max_len)) / 2, with L capped at max_len and (hi, lo) the value at
    length 0 and at max_len for a right (or wrong) answer.
    """

    __name__ = "cosine"
    needs_columns = ("solution",)

    def __init__(self, max_len: int, wrong: tuple[float, float], correct: tuple[float, float]):
        self.max_len = max_len
        self.wrong = wrong  # (value at length 0, value at max_len)
        self.correct = correct

    def value(self, length: int, correct: bool) -> float:
        at_zero, at_max = self.correct if correct else self.wrong
        progress = min(length, self.max_len) / self.max_len
        return at_max + (at_zero - at_max) * (1.0 + math.cos(math.pi * progress)) / 2.0

    def __call__(
        self, completions: list[str], solution: list[str], completion_ids: list[list[int]], **kwargs
    ) -> list[float | None]:
        out = []
        for completion, sol, ids in zip(completions, solution, completion_ids, strict=True):
            correct = is_correct(completion, sol)
            out.append(None if correct is None else self.value(len(ids), correct))
        return out


class Repetition:
    """Penalty for repeated word n-grams: max_penalty x (1 - distinct n-grams / n-grams); 0 for short answers."""

    __name__ = "repetition"
    needs_columns = ()

    def __init__(self, n_grams: int, max_penalty: float):
        self.n = n_grams
        self.max_penalty = max_penalty

    def value(self, text: str) -> float:
        words = text.lower().split()
        if len(words) < self.n:
            return 0.0
        grams = [tuple(words[i : i + self.n]) for i in range(len(words) - self.n + 1)]
        return (1.0 - len(set(grams)) / len(grams)) * self.max_penalty

    def __call__(self, completions: list[str], **kwargs) -> list[float]:
        return [self.value(c) for c in completions]


class SoftOverlong:
    """DAPO's soft overlong punishment: 0 up to max_length - cache_length tokens, then falling linearly to -1 at
    max_length (and below -1 beyond it)."""

    __name__ = "soft_overlong"
    needs_columns = ()

    def __init__(self, max_length: int, cache_length: int):
        self.expected = max_length - cache_length
        self.cache = cache_length

    def value(self, length: int) -> float:
        return min(0.0, (self.expected - length) / self.cache)

    def __call__(self, completions: list[str], completion_ids: list[list[int]], **kwargs) -> list[float]:
        return [self.value(len(ids)) for ids in completion_ids]


def _cosine(cfg: Any) -> Cosine:
    return Cosine(
        cfg.cosine_max_len or cfg.max_completion_length,
        wrong=(cfg.cosine_min_len_value_wrong, cfg.cosine_max_len_value_wrong),
        correct=(cfg.cosine_min_len_value_correct, cfg.cosine_max_len_value_correct),
    )


def _soft_overlong(cfg: Any) -> SoftOverlong:
    return SoftOverlong(cfg.soft_length, cfg.soft_cache_length)


# name -> factory taking the algorithm config (the reward's settings live there, under ms-swift's names).
BUILTIN: dict[str, Callable[[Any], Callable]] = {
    "accuracy": lambda cfg: Accuracy(),
    "format": lambda cfg: Format(),
    "cosine": _cosine,
    "repetition": lambda cfg: Repetition(cfg.repetition_n_grams, cfg.repetition_max_penalty),
    "soft_overlong": _soft_overlong,
}
