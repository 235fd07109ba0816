"""The one vision-aware data path of every algorithm that reads images.

The training dataset holds row indices only; the collator looks the rows up, decodes their images (lazily, one
batch at a time, within model.min_pixels / max_pixels) and hands them to TRL's vision collators, which render the
chat template, expand the image tokens and pad. DPO and KTO train on those batches with TRL's own loss code; CPO,
SimPO, ORPO and reward models, which TRL 1.16 cannot feed images, read the same batches through the functions
below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from rlhf_lab.data.images import IMAGES, PixelBounds, decoded

# Batch keys that describe the batch rather than being model inputs.
NOT_MODEL_INPUTS = ("completion_mask", "margin")


def pixel_bounds(run) -> PixelBounds:
    return PixelBounds(run.model.min_pixels, run.model.max_pixels)


def index_dataset(rows: list[dict]):
    """Row indices, plus the `images` column by which TRL's trainers recognise a vision dataset."""
    from datasets import Dataset

    return Dataset.from_dict({"index": list(range(len(rows))), IMAGES: [len(r[IMAGES]) for r in rows]})


@dataclass
class RowsWithImages:
    """Collator: batch of row indices -> rows with decoded images -> the inner (TRL) collator."""

    rows: list[dict]
    bounds: PixelBounds
    inner: Callable[[list[dict]], dict]
    extra: Callable[[list[dict], dict], dict] | None = None

    def __call__(self, examples: list[dict]) -> dict:
        rows = [decoded(self.rows[e["index"]], self.bounds) for e in examples]
        batch = self.inner(rows)
        return self.extra(rows, batch) if self.extra is not None else batch


def pair_collator(processor, rows: list[dict], bounds: PixelBounds, max_length: int | None) -> RowsWithImages:
    """(prompt+chosen, prompt+rejected) batches: 2B sequences, chosen first, with pixel values for both halves."""
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    return RowsWithImages(rows, bounds, DataCollatorForVisionPreference(processor=processor, max_length=max_length))


@dataclass
class DistillBatch:
    """GKD's batches of conversations with images: the prompt (left-padded, also kept alone as `prompts` for the
    student or teacher to answer) followed by the answer (right-padded; the only labelled tokens), with the images'
    pixels. Rows without an answer (seq_kd, lmbda=1) get an empty one: their answers are generated."""

    processor: object
    max_length: int | None = None

    def __call__(self, rows: list[dict]) -> dict:
        from trl.data_utils import apply_chat_template

        texts = [
            apply_chat_template(
                {"prompt": r["messages"][:-1], "completion": r["messages"][-1:]}
                if r["has_answer"]
                else {"prompt": r["messages"]},
                self.processor,
            )
            for r in rows
        ]
        images = [r[IMAGES] for r in rows]
        prompts = self.processor(
            images=images if any(images) else None,
            text=[t["prompt"] for t in texts],
            padding=True,
            padding_side="left",
            return_tensors="pt",
            add_special_tokens=False,
        )
        answers = self.processor.tokenizer(
            [t.get("completion", "") for t in texts],
            padding=True,
            padding_side="right",
            return_tensors="pt",
            add_special_tokens=False,
        )
        input_ids = torch.cat([prompts["input_ids"], answers["input_ids"]], dim=1)
        attention_mask = torch.cat([prompts["attention_mask"], answers["attention_mask"]], dim=1)
        labelled = torch.cat([torch.zeros_like(prompts["attention_mask"]), answers["attention_mask"]], dim=1)
        if self.max_length is not None:  # answers are cut, never prompts (their image tokens must stay whole)
            keep = max(self.max_length, prompts["input_ids"].size(1))
            input_ids, attention_mask, labelled = input_ids[:, :keep], attention_mask[:, :keep], labelled[:, :keep]
        batch = {k: v for k, v in prompts.items() if k not in ("input_ids", "attention_mask")}
        batch.update(
            input_ids=input_ids,
            attention_mask=attention_mask,
            labels=input_ids.masked_fill(labelled == 0, -100),
            prompts=prompts["input_ids"],
            prompt_attention_mask=prompts["attention_mask"],
        )
        return batch


def distill_collator(processor, rows: list[dict], bounds: PixelBounds, max_length: int | None) -> RowsWithImages:
    return RowsWithImages(rows, bounds, DistillBatch(processor, max_length))


_TEXT_KEYS = ("input_ids", "attention_mask", "labels", "prompts", "prompt_attention_mask")
# Per-token marks of the image positions, laid out like the prompt.
_PER_TOKEN = ("token_type_ids", "mm_token_type_ids")


def image_inputs(batch: dict, length: int | None = None) -> dict:
    """A DistillBatch's image inputs for a forward over `length` tokens (the prompt followed by an answer; None = the
    prompt alone, for generation): per-token image marks are extended over the answer, which has no image."""
    out = {}
    for key, value in batch.items():
        if key in _TEXT_KEYS:
            continue
        if key in _PER_TOKEN and length is not None and value.size(1) < length:
            value = torch.cat([value, value.new_zeros(value.size(0), length - value.size(1))], dim=1)
        out[key] = value
    return out


def with_margin(rows: list[dict], batch: dict) -> dict:
    """Reward models: the batch's per-pair margins (used when every row of the dataset has one, as in text runs)."""
    batch["margin"] = torch.tensor([float(r["margin"]) for r in rows])
    return batch


def labelled_collator(processor, rows: list[dict], bounds: PixelBounds, max_length: int | None) -> RowsWithImages:
    """(prompt+completion) batches of labelled rows, in row order (held-out evaluation of KTO runs)."""
    from trl.trainer.kto_trainer import DataCollatorForVisionUnpairedPreference

    inner = DataCollatorForVisionUnpairedPreference(processor=processor, max_length=max_length, calculate_kl=False)
    return RowsWithImages(rows, bounds, inner)


def batches(collator: RowsWithImages, batch_size: int):
    """The collator's batches over all its rows, in order."""
    n = len(collator.rows)
    for start in range(0, n, batch_size):
        yield collator([{"index": i} for i in range(start, min(n, start + batch_size))])


def model_inputs(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if k not in NOT_MODEL_INPUTS}


def to_device(batch: dict, device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def token_logps(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of each next token (B, T-1) and the logits."""
    logits = model(**model_inputs(batch), use_cache=False).logits
    targets = batch["input_ids"][:, 1:]
    logps = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return logps, logits


def sequence_logps(logps: torch.Tensor, mask: torch.Tensor, average: bool) -> torch.Tensor:
    """Per-sequence sum (or mean) of the token log-probs where mask (aligned with the targets) is set."""
    mask = mask.to(logps.dtype)
    summed = (logps * mask).sum(-1)
    return summed / mask.sum(-1).clamp(min=1) if average else summed


def mean_nll(logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over the masked tokens of all sequences (what nn.CrossEntropyLoss gives)."""
    mask = mask.to(logps.dtype)
    return -(logps * mask).sum() / mask.sum().clamp(min=1)


def text_targets(batch: dict, image_token_ids: set[int]) -> torch.Tensor:
    """Every real token except image placeholders (ORPO's NLL is over prompt and answer, as in TRL's text path)."""
    keep = batch["attention_mask"].bool()
    for token in image_token_ids:
        keep &= batch["input_ids"] != token
    return keep


def image_token_ids(model) -> set[int]:
    config = model.config
    return {
        getattr(config, k)
        for k in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")
        if getattr(config, k, None) is not None
    }


def feed_images(trainer, run, rows: list[dict]):
    """Put image decoding in front of the collator TRL chose for a vision dataset (DPO, KTO)."""
    trainer.data_collator = RowsWithImages(rows, pixel_bounds(run), trainer.data_collator)
    return trainer
