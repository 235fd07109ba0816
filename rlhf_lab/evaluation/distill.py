"""Held-out evaluation of a distilled student, on the held-out answers' tokens:

- divergence: the generalized Jensen-Shannon divergence to the teacher that GKD minimises (algorithm.beta:
  0 forward KL, 1 reverse KL), averaged over answer tokens;
- forward_kl: KL(teacher || student) per answer token, whatever beta is;
- nll: the student's negative log-likelihood of the answers, per token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rlhf_lab.config.run import Run
from rlhf_lab.evaluation.preference import padded_batches, tokenize_pair_side


def generalized_jsd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-position generalized JSD of Agarwal et al. (2024), Eq. 1 (beta=0 is KL(T||S), beta=1 is KL(S||T)):
    TRL's own loss, unreduced, so the evaluation measures exactly what GKD trains on."""
    from trl.experimental.gkd import GKDTrainer

    return GKDTrainer.generalized_jsd_loss(
        student_logits.float(), teacher_logits.float(), beta=beta, reduction="none"
    ).sum(-1)


class TeacherDivergence:
    def __init__(self, run: Run, tokenizer, rows: list[dict], bf16: bool, trainer=None):
        self.beta = run.algorithm.beta
        self.bf16 = bf16
        self.batch_size = run.train.per_device_eval_batch_size
        self.pad_id = tokenizer.pad_token_id
        self.teacher = trainer.teacher_model
        answered = [r for r in rows if r["has_answer"]]
        self.collator = self.sequences = None
        if trainer.vision:  # the images go into both models' forwards, as in training
            from rlhf_lab.vision.batches import distill_collator, pixel_bounds

            self.collator = distill_collator(
                trainer.processing_class, answered, pixel_bounds(run), run.train.max_length
            )
        else:
            self.sequences = [
                tokenize_pair_side(tokenizer, r["messages"][:-1], r["messages"][-1:], run.train.max_length)
                for r in answered
            ]

    def batches(self):
        """(token ids, attention mask, answer-token mask, image inputs) per batch of held-out answers."""
        if self.collator is None:
            for ids, attention, answer in padded_batches(self.sequences, self.batch_size, self.pad_id):
                yield ids, attention, answer, {}
            return
        from rlhf_lab.vision.batches import batches, image_inputs

        for batch in batches(self.collator, self.batch_size):
            ids = batch["input_ids"]
            yield ids, batch["attention_mask"], batch["labels"] != -100, image_inputs(batch, ids.size(1))

    @torch.inference_mode()
    def evaluate(self, model) -> dict:
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        sums = {"divergence": 0.0, "forward_kl": 0.0, "nll": 0.0}
        tokens = 0
        for ids, attention, answer, images in self.batches():
            ids, attention, answer = ids.to(device), attention.to(device), answer.to(device)
            images = {k: v.to(device) for k, v in images.items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16):
                student = model(input_ids=ids, attention_mask=attention, **images).logits[:, :-1]
                teacher = self.teacher(input_ids=ids, attention_mask=attention, **images).logits[:, :-1]
            mask = answer[:, 1:]
            # Only answer positions are scored: select them before the full-vocabulary softmaxes.
            student, teacher, targets = student[mask], teacher[mask], ids[:, 1:][mask]
            sums["divergence"] += generalized_jsd(student, teacher, self.beta).sum().item()
            sums["forward_kl"] += generalized_jsd(student, teacher, 0.0).sum().item()
            sums["nll"] += F.cross_entropy(student.float(), targets, reduction="sum").item()
            tokens += int(mask.sum())
        model.train(was_training)
        return {key: value / max(tokens, 1) for key, value in sums.items()}
