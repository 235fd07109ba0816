"""TRL's GKDTrainer plus sft_alpha: ms-swift's SFT loss on the batches the student did not generate."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from trl.experimental.gkd import GKDTrainer

from rlhf_lab.algorithms.contract import LabTrainer


def sft_loss(logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    """Next-token cross-entropy over the answer tokens (labels -100 elsewhere), normalised like the GKD term."""
    shifted_logits, shifted_labels = logits[:, :-1, :], labels[:, 1:]
    total = F.cross_entropy(
        shifted_logits.reshape(-1, shifted_logits.size(-1)).float(),
        shifted_labels.reshape(-1),
        ignore_index=-100,
        reduction="sum",
    )
    if num_items_in_batch is not None:
        return total / num_items_in_batch
    return total / (shifted_labels != -100).sum().clamp_min(1)


class LabGKDTrainer(LabTrainer, GKDTrainer):
    def __init__(self, *args, sft_alpha: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.sft_alpha = sft_alpha
        self._student_generated = False
        self.batch_sources = {"dataset": 0, "teacher": 0, "student": 0}

    def generate_on_policy_outputs(self, model, inputs, generation_config):
        # Called by the parent's training_step for the student's (lmbda) and the teacher's (seq_kd) samples.
        teacher = self.accelerator.unwrap_model(self.teacher_model)
        self._student_generated = model is not teacher and model is not self.teacher_model
        self.batch_sources["student" if self._student_generated else "teacher"] += 1
        return GKDTrainer.generate_on_policy_outputs(model, inputs, generation_config)

    def training_step(self, model, inputs, num_items_in_batch=None):
        self._student_generated = False
        sources_before = sum(self.batch_sources.values())
        loss = super().training_step(model, inputs, num_items_in_batch)
        if sum(self.batch_sources.values()) == sources_before:
            self.batch_sources["dataset"] += 1
        return loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if self.sft_alpha > 0 and not self._student_generated:
            loss = loss + self.sft_alpha * sft_loss(outputs.logits, inputs["labels"], num_items_in_batch)
        return (loss, outputs) if return_outputs else loss

    def summary_extras(self) -> dict:
        return {"batch_sources": dict(self.batch_sources)}
