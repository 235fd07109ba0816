"""Token lengths of the rows against train.max_length, and what dataset.truncation does with the longer ones.

A row's length is that of the longest sequence it trains on, tokenized through the chat template as TRL tokenizes
it: prompt + chosen and prompt + rejected for pairs, prompt + answer for KTO and SFT rows, the prompt for online
algorithms (which generate after it). The policies:

- right: the trainer keeps the first max_length tokens (TRL's cut); rows are counted and the longest is named. A row
  whose prompt alone fills max_length would keep no answer token (TRL drops such rows), so it is dropped and listed.
  Online algorithms never cut a prompt: theirs are counted only.
- delete: every longer row is dropped and listed in dropped_rows.jsonl.
- error: the first longer row stops the run, naming its file and line.

Rows with images are not measured (their image tokens depend on the processor); the count says how many.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rlhf_lab.data.formats import ROW_SOURCE
from rlhf_lab.data.images import IMAGES
from rlhf_lab.data.load import Dropped
from rlhf_lab.errors import DataError

# Per algorithm format: the message lists each trained sequence is made of, and the prompt's.
SEQUENCES = {
    "pairs": ((("prompt", "chosen"), ("prompt", "rejected")), ("prompt",)),
    "kto": ((("prompt", "completion"),), ("prompt",)),
    "sft": ((("messages",),), None),
    "prompts": ((("prompt",),), ("prompt",)),
}
ONLINE = "prompts"


def _tokens(tokenizer, messages: list[dict], generation_prompt: bool) -> int:
    ids = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, add_generation_prompt=generation_prompt
    )
    return len(ids["input_ids"])


def row_lengths(tokenizer, row: dict, fmt: str) -> tuple[int, int]:
    """(the longest sequence the row trains on, its prompt alone), in tokens."""
    sequences, prompt_fields = SEQUENCES[fmt]
    online = fmt == ONLINE
    longest = max(_tokens(tokenizer, [m for f in fields for m in row[f]], online) for fields in sequences)
    if prompt_fields is None:  # SFT rows: every message but the answer
        prompt = _tokens(tokenizer, row["messages"][:-1], True)
    elif online:
        prompt = longest
    else:
        prompt = _tokens(tokenizer, [m for f in prompt_fields for m in row[f]], True)
    return longest, prompt


@dataclass
class LengthCheck:
    """Measures rows of one split and applies the policy; `dropped` lists the rows it removed."""

    tokenizer: object
    fmt: str
    max_length: int
    policy: str
    measured: int = 0
    over: int = 0
    longest: int = 0
    longest_row: str | None = None
    prompt_filled: int = 0
    unmeasured: int = 0
    dropped: list = field(default_factory=list)

    def keep(self, row: dict) -> bool:
        """Whether the row trains (after the policy); raises DataError under policy error."""
        if row.get(IMAGES):
            self.unmeasured += 1
            return True
        length, prompt = row_lengths(self.tokenizer, row, self.fmt)
        self.measured += 1
        if length > self.longest:
            self.longest, self.longest_row = length, row[ROW_SOURCE]
        if length <= self.max_length:
            return True
        self.over += 1
        online = self.fmt == ONLINE
        what = "prompt" if online else "row"
        if self.policy == "error":
            path, _, line = row[ROW_SOURCE].rpartition(":")
            raise DataError(
                path,
                f"the {what} is {length} tokens, over train.max_length={self.max_length}; raise "
                "train.max_length, or set dataset.truncation=right (cut) or delete (drop)",
                line=int(line),
            )
        if self.policy == "delete":
            return self._drop(
                row, f"{length} tokens, over train.max_length={self.max_length} (dataset.truncation=delete)"
            )
        if not online and prompt >= self.max_length:
            self.prompt_filled += 1
            return self._drop(
                row,
                f"the prompt alone is {prompt} tokens, filling train.max_length={self.max_length}: no "
                "answer token would be trained",
            )
        return True

    def _drop(self, row: dict, message: str) -> bool:
        path, _, line = row[ROW_SOURCE].rpartition(":")
        self.dropped.append(Dropped(path, int(line), None, message))
        return False

    def kept(self, rows) -> list[int]:
        """Indices of the rows that train."""
        return [i for i, row in enumerate(rows) if self.keep(row)]

    def summary(self) -> dict:
        return {
            "measured": self.measured,
            "over_max_length": self.over,
            "longest": self.longest,
            "longest_row": self.longest_row,
            "dropped": len(self.dropped),
            "prompt_fills_max_length": self.prompt_filled,
            "not_measured_image_rows": self.unmeasured,
        }

    def describe(self, split: str) -> str | None:
        """One log line when rows are over max_length (None when none are)."""
        if not self.over:
            return None
        online = self.fmt == ONLINE
        unit = "prompts" if online else "rows"
        head = (
            f"{split}: {self.over} of {self.measured} {unit} are longer than train.max_length={self.max_length} "
            f"tokens (longest {self.longest}, {self.longest_row})"
        )
        if self.policy == "delete":
            return f"{head}; dropped (dataset.truncation=delete)"
        if online:
            return (
                f"{head}; kept whole: online algorithms generate after the whole prompt "
                "(dataset.truncation=delete drops them)"
            )
        tail = f"; {self.prompt_filled} whose prompt alone fills it were dropped" if self.prompt_filled else ""
        return (
            f"{head}; their ends are cut (dataset.truncation=right){tail}; raise train.max_length or set "
            "dataset.truncation=delete"
        )


def check_lengths(splits, tokenizer, fmt: str, max_length: int, policy: str, log, train: bool = True) -> dict:
    """Measure the training and held-out rows, apply the policy to both, and report: the summary.json entry.
    train=False leaves the training rows to be measured as their batches are drawn (dataset.lazy_tokenize)."""
    report = {"max_length": max_length, "truncation": policy}
    for name in ("train", "val") if train else ("val",):
        check = LengthCheck(tokenizer, fmt, max_length, policy)
        rows = getattr(splits, name)
        kept = check.kept(rows)
        if len(kept) != len(rows):
            setattr(splits, name, rows.select(kept))
            splits.dropped.extend(check.dropped)
        line = check.describe("training" if name == "train" else "held-out")
        if line:
            log.warning(line)
        report["train" if name == "train" else "held_out"] = check.summary()
    if train and not len(splits.train):
        raise DataError(
            str(splits.sources[0]["source"]),
            f"no training rows are within train.max_length={max_length} "
            "tokens; raise it, or set dataset.truncation=right",
        )
    return report
