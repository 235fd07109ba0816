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


class _GenerateWithImages:
    """A model whose generate() also gets the prompts' images (TRL's generate_on_policy_outputs passes text only),
    with image tokens suppressed: a generated one would have no image behind it."""

    def __init__(self, model, images: dict, suppress: list[int]):
        self.model, self.images, self.suppress = model, images, suppress

    def generate(self, **kwargs):
        return self.model.generate(**kwargs, **self.images, suppress_tokens=self.suppress or None)


class LabGKDTrainer(LabTrainer, GKDTrainer):
    def __init__(self, *args, sft_alpha: float = 0.0, vision: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.sft_alpha = sft_alpha
        self.vision = vision
        self._student_generated = False
        self.batch_sources = {"dataset": 0, "teacher": 0, "student": 0}

    def generate_on_policy_outputs(self, model, inputs, generation_config):
        # Called by the parent's training_step for the student's (lmbda) and the teacher's (seq_kd) samples.
        teacher = self.accelerator.unwrap_model(self.teacher_model)
        self._student_generated = model is not teacher and model is not self.teacher_model
        self.batch_sources["student" if self._student_generated else "teacher"] += 1
        if self.vision:
            from rlhf_lab.vision.batches import image_inputs, image_token_ids

            suppress = sorted(image_token_ids(model))
            model = _GenerateWithImages(model, image_inputs(inputs), suppress)
        return GKDTrainer.generate_on_policy_outputs(model, inputs, generation_config)

    def training_step(self, model, inputs, num_items_in_batch=None):
        self._student_generated = False
        sources_before = sum(self.batch_sources.values())
        loss = super().training_step(model, inputs, num_items_in_batch)
        if sum(self.batch_sources.values()) == sources_before:
            self.batch_sources["dataset"] += 1
        return loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.vision:
            loss, outputs = self._loss_with_images(model, inputs, num_items_in_batch)
        else:
            loss, outputs = super().compute_loss(
                model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
            )
        if self.sft_alpha > 0 and not self._student_generated:
            loss = loss + self.sft_alpha * sft_loss(outputs.logits, inputs["labels"], num_items_in_batch)
        return (loss, outputs) if return_outputs else loss

    def _loss_with_images(self, model, inputs, num_items_in_batch):
        """TRL's GKD loss (its generalized JSD on the labelled positions), with the images in both forwards."""
        from rlhf_lab.vision.batches import image_inputs

        text = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
        images = image_inputs(inputs, inputs["input_ids"].size(1))
        student = model(**text, **images)
        self.teacher_model.eval()
        with torch.no_grad():
            teacher = self.teacher_model(**text, **images)
        loss = self.generalized_jsd_loss(
            student_logits=student.logits[:, :-1, :],
            teacher_logits=teacher.logits[:, :-1, :],
            labels=inputs["labels"][:, 1:],
            beta=self.beta,
            num_items_in_batch=num_items_in_batch,
        )
        return loss, student

    def summary_extras(self) -> dict:
        return {"batch_sources": dict(self.batch_sources)}
