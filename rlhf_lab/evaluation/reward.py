"""Held-out evaluation of a reward model: pairwise accuracy (score of chosen > rejected) and mean score margin."""

from __future__ import annotations

import torch

from rlhf_lab.config.run import Run
from rlhf_lab.evaluation.preference import (
    evaluating,
    interleave_pairs,
    padded_batches,
    tokenize_pair_side,
    vision_collator,
)


@torch.inference_mode()
def scores(model, sequences, batch_size: int, pad_id: int, bf16: bool) -> torch.Tensor:
    out = []
    with evaluating(model) as device:
        for ids, attention, _ in padded_batches(sequences, batch_size, pad_id):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(input_ids=ids.to(device), attention_mask=attention.to(device)).logits
            out.append(logits[:, 0].float().cpu())
    return torch.cat(out)


@torch.inference_mode()
def vision_scores(model, collator, batch_size: int, bf16: bool) -> torch.Tensor:
    """Scores of (images, prompt, answer) sequences, [chosen, rejected] per row."""
    from rlhf_lab.vision.batches import batches, model_inputs, to_device

    out = []
    with evaluating(model) as device:
        for batch in batches(collator, batch_size):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(**model_inputs(to_device(batch, device))).logits
            out.append(interleave_pairs(logits[:, 0].float().cpu()))
    return torch.cat(out)


class RewardEval:
    def __init__(self, run: Run, tokenizer, rows: list[dict], bf16: bool, trainer=None):
        self.batch_size = run.train.per_device_eval_batch_size
        self.bf16 = bf16
        self.pad_id = tokenizer.pad_token_id
        self.collator = vision_collator(run, rows, trainer, pairs=True)
        self.sequences = (
            None
            if self.collator
            else [
                tokenize_pair_side(tokenizer, row["prompt"], row[side], run.train.max_length)
                for row in rows
                for side in ("chosen", "rejected")
            ]
        )

    def evaluate(self, model) -> dict:
        if self.collator is not None:
            s = vision_scores(model, self.collator, self.batch_size, self.bf16)
        else:
            s = scores(model, self.sequences, self.batch_size, self.pad_id, self.bf16)
        chosen, rejected = s[0::2], s[1::2]
        return {
            "accuracy": (chosen > rejected).float().mean().item(),
            "reward_margin": (chosen - rejected).mean().item(),
            "score_chosen": chosen.mean().item(),
            "score_rejected": rejected.mean().item(),
        }
