"""Held-out preference evaluation of pair data, before and after training.

- accuracy: fraction of pairs where the policy gives the chosen answer a higher log-probability
  than the rejected one (summed over the answer's tokens);
- reward_margin: mean DPO implicit reward margin beta*[(logp_c - logp0_c) - (logp_r - logp0_r)],
  where logp0 is the policy before training (the reference of a default DPO run), so it is 0 before.
"""

from __future__ import annotations

import torch

from rlhf_lab.run import Run


def tokenize_pair_side(tokenizer, prompt: list[dict], answer: list[dict], max_length: int) -> tuple[list[int], int]:
    """Token ids of prompt+answer through the chat template, and where the answer starts."""
    prompt_text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    full_text = tokenizer.apply_chat_template(prompt + answer, tokenize=False)
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(full_text, add_special_tokens=False)["input_ids"]
    return full_ids[:max_length], min(len(prompt_ids), max_length)


class PreferenceEval:
    def __init__(self, run: Run, tokenizer, rows: list[dict], bf16: bool):
        self.beta = run.algorithm.beta
        self.batch_size = run.train.per_device_eval_batch_size
        self.bf16 = bf16
        self.pad_id = tokenizer.pad_token_id
        self.sequences = []  # chosen_0, rejected_0, chosen_1, ...
        for row in rows:
            for side in ("chosen", "rejected"):
                self.sequences.append(tokenize_pair_side(tokenizer, row["prompt"], row[side], run.train.max_length))
        self.reference: torch.Tensor | None = None

    @torch.inference_mode()
    def answer_logps(self, model) -> torch.Tensor:
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        out = []
        for start in range(0, len(self.sequences), self.batch_size):
            batch = self.sequences[start : start + self.batch_size]
            width = max(len(ids) for ids, _ in batch)
            ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            answer = torch.zeros((len(batch), width), dtype=torch.bool)
            for i, (seq, answer_start) in enumerate(batch):
                ids[i, : len(seq)] = torch.tensor(seq)
                attention[i, : len(seq)] = 1
                answer[i, answer_start : len(seq)] = True
            ids, attention, answer = ids.to(device), attention.to(device), answer.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16):
                logits = model(input_ids=ids, attention_mask=attention).logits
            logps = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            token_logps = logps.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
            out.append((token_logps * answer[:, 1:]).sum(-1).cpu())
        model.train(was_training)
        return torch.cat(out)

    def evaluate(self, model) -> dict:
        logps = self.answer_logps(model)
        if self.reference is None:
            self.reference = logps.clone()
        chosen, rejected = logps[0::2], logps[1::2]
        ref_chosen, ref_rejected = self.reference[0::2], self.reference[1::2]
        margin = self.beta * ((chosen - ref_chosen) - (rejected - ref_rejected))
        return {
            "accuracy": (chosen > rejected).float().mean().item(),
            "reward_margin": margin.mean().item(),
            "logp_chosen": chosen.mean().item(),
            "logp_rejected": rejected.mean().item(),
        }
