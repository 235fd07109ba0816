"""Held-out preference evaluation, before and after training.

Pairs (DPO, CPO, SimPO, ORPO):
- accuracy: fraction of pairs where the policy gives the chosen answer a higher log-probability than
  the rejected one (summed over the answer's tokens);
- reward_margin: mean implicit reward margin beta*[(logp_c - logp0_c) - (logp_r - logp0_r)], where logp0
  is the policy before training (the reference of a default DPO/KTO run), so it is 0 before training;
- logp_margin: mean logp_c - logp_r, what the reference-free methods (CPO, SimPO, ORPO) push up.

Labelled rows (KTO): the same metrics over the held-out prompts that have both a desirable and an
undesirable answer; reward_margin compares the mean implicit reward of desirable and undesirable answers.
"""

from __future__ import annotations

import json
from contextlib import contextmanager

import torch

from rlhf_lab.config.run import Run


def tokenize_pair_side(tokenizer, prompt: list[dict], answer: list[dict], max_length: int) -> tuple[list[int], int]:
    """Token ids of prompt+answer through the chat template, and where the answer starts."""
    prompt_text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    full_text = tokenizer.apply_chat_template(prompt + answer, tokenize=False)
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(full_text, add_special_tokens=False)["input_ids"]
    return full_ids[:max_length], min(len(prompt_ids), max_length)


def padded_batches(sequences: list[tuple[list[int], int]], batch_size: int, pad_id: int):
    """(ids, attention mask, answer mask) batches, right-padded."""
    for start in range(0, len(sequences), batch_size):
        batch = sequences[start : start + batch_size]
        width = max(len(ids) for ids, _ in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        answer = torch.zeros((len(batch), width), dtype=torch.bool)
        for i, (seq, answer_start) in enumerate(batch):
            ids[i, : len(seq)] = torch.tensor(seq)
            attention[i, : len(seq)] = 1
            answer[i, answer_start : len(seq)] = True
        yield ids, attention, answer


@contextmanager
def evaluating(model):
    """The model in eval mode (no dropout) for the block, its device as the value; its mode restored after."""
    was_training = model.training
    model.eval()
    try:
        yield next(model.parameters()).device
    finally:
        model.train(was_training)


@torch.inference_mode()
def answer_logps(model, sequences, batch_size: int, pad_id: int, bf16: bool) -> torch.Tensor:
    """Summed log-probability of each sequence's answer tokens."""
    out = []
    with evaluating(model) as device:
        for ids, attention, answer in padded_batches(sequences, batch_size, pad_id):
            ids, attention, answer = ids.to(device), attention.to(device), answer.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(input_ids=ids, attention_mask=attention).logits
            logps = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            token_logps = logps.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
            out.append((token_logps * answer[:, 1:]).sum(-1).cpu())
    return torch.cat(out)


def interleave_pairs(values: torch.Tensor) -> torch.Tensor:
    """A vision pair batch is [chosen..., rejected...]; evaluations read [chosen, rejected] per row."""
    chosen, rejected = values.chunk(2)
    return torch.stack([chosen, rejected], dim=1).reshape(-1)


@torch.inference_mode()
def vision_answer_logps(model, collator, batch_size: int, bf16: bool, pairs: bool) -> torch.Tensor:
    """Summed log-probability of each answer, with the rows' images (the collator of vision/batches.py)."""
    from rlhf_lab.vision.batches import batches, sequence_logps, to_device, token_logps

    out = []
    with evaluating(model) as device:
        for batch in batches(collator, batch_size):
            batch = to_device(batch, device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logps, _ = token_logps(model, batch)
            summed = sequence_logps(logps, batch["completion_mask"][:, 1:], average=False).cpu()
            out.append(interleave_pairs(summed) if pairs else summed)
    return torch.cat(out)


def vision_collator(run: Run, rows: list[dict], trainer, pairs: bool):
    """The training runs' vision collator over held-out rows, or None for text rows."""
    if not rows or "images" not in rows[0]:
        return None
    from rlhf_lab.vision.batches import labelled_collator, pair_collator, pixel_bounds

    make = pair_collator if pairs else labelled_collator
    return make(trainer.processing_class, rows, pixel_bounds(run), run.train.max_length)


class _LogpEval:
    """Shared state: tokenized sequences (or, with images, a collator) and the log-probs of the first evaluation
    (the start policy)."""

    def __init__(self, run: Run, tokenizer, bf16: bool, sequences, collator=None, pairs: bool = True):
        self.beta = run.algorithm.beta
        self.batch_size = run.train.per_device_eval_batch_size
        self.bf16 = bf16
        self.pad_id = tokenizer.pad_token_id
        self.sequences = sequences
        self.collator = collator
        self.pairs = pairs
        self.start: torch.Tensor | None = None

    def logps_and_rewards(self, model) -> tuple[torch.Tensor, torch.Tensor]:
        if self.collator is not None:
            logps = vision_answer_logps(model, self.collator, self.batch_size, self.bf16, self.pairs)
        else:
            logps = answer_logps(model, self.sequences, self.batch_size, self.pad_id, self.bf16)
        if self.start is None:
            self.start = logps.clone()
        return logps, self.beta * (logps - self.start)


class PreferenceEval(_LogpEval):
    def __init__(self, run: Run, tokenizer, rows: list[dict], bf16: bool, trainer=None):
        collator = vision_collator(run, rows, trainer, pairs=True)
        sequences = (
            None
            if collator
            else [
                tokenize_pair_side(tokenizer, row["prompt"], row[side], run.train.max_length)
                for row in rows
                for side in ("chosen", "rejected")
            ]
        )
        super().__init__(run, tokenizer, bf16, sequences, collator)

    def evaluate(self, model) -> dict:
        logps, rewards = self.logps_and_rewards(model)
        chosen, rejected = logps[0::2], logps[1::2]
        return {
            "accuracy": (chosen > rejected).float().mean().item(),
            "reward_margin": (rewards[0::2] - rewards[1::2]).mean().item(),
            "logp_margin": (chosen - rejected).mean().item(),
            "logp_chosen": chosen.mean().item(),
            "logp_rejected": rejected.mean().item(),
        }


class LabelledEval(_LogpEval):
    def __init__(self, run: Run, tokenizer, rows: list[dict], bf16: bool, trainer=None):
        collator = vision_collator(run, rows, trainer, pairs=False)
        sequences = (
            None
            if collator
            else [tokenize_pair_side(tokenizer, r["prompt"], r["completion"], run.train.max_length) for r in rows]
        )
        super().__init__(run, tokenizer, bf16, sequences, collator, pairs=False)
        self.labels = torch.tensor([bool(r["label"]) for r in rows])
        by_prompt: dict[str, dict[bool, list[int]]] = {}
        for i, r in enumerate(rows):
            by_prompt.setdefault(json.dumps(r["prompt"]), {True: [], False: []})[bool(r["label"])].append(i)
        self.pairs = [(d, u) for g in by_prompt.values() for d in g[True] for u in g[False]]

    def evaluate(self, model) -> dict:
        logps, rewards = self.logps_and_rewards(model)
        good, bad = self.labels, ~self.labels
        margin = rewards[good].mean() - rewards[bad].mean() if good.any() and bad.any() else torch.tensor(float("nan"))
        result = {"reward_margin": margin.item(), "accuracy": None, "logp_margin": None, "pairs": len(self.pairs)}
        if self.pairs:
            d, u = torch.tensor([p[0] for p in self.pairs]), torch.tensor([p[1] for p in self.pairs])
            result["accuracy"] = (logps[d] > logps[u]).float().mean().item()
            result["logp_margin"] = (logps[d] - logps[u]).mean().item()
        result["logp_desirable"] = logps[good].mean().item() if good.any() else None
        result["logp_undesirable"] = logps[bad].mean().item() if bad.any() else None
        return result
