"""Vision support for the trainers TRL 1.16 cannot feed images: CPO/SimPO, ORPO and reward models.

Each reads the batches of vision/batches.py (2B sequences, chosen first) and returns what the TRL trainer's own
loss code expects, so the losses and logged metrics stay TRL's.
"""

from __future__ import annotations

import torch
from trl import RewardTrainer
from trl.experimental.cpo import CPOTrainer
from trl.experimental.orpo import ORPOTrainer

from rlhf_lab.algorithms.contract import LabTrainer
from rlhf_lab.vision.batches import image_token_ids, mean_nll, sequence_logps, text_targets, token_logps


class _RowsFromCollator(LabTrainer):
    """The index dataset needs no tokenizing: the collator renders and tokenizes rows with their images.

    These trainers set themselves up from a tokenizer (padding and special tokens); the processor replaces it
    afterwards, so that checkpoints and the final model are saved with it and reload as vision models."""

    def __init__(self, *args, processor, **kwargs):
        super().__init__(*args, **kwargs)
        self.processing_class = processor

    def tokenize_row(self, feature, model=None) -> dict:
        return {}


class VisionCPOTrainer(_RowsFromCollator, CPOTrainer):
    def concatenated_forward(self, model, batch):
        logps, logits = token_logps(model, batch)
        answer = batch["completion_mask"][:, 1:]
        # As in TRL's text path: ipo and simpo compare length-normalised log-probs.
        seq = sequence_logps(logps, answer, average=self.loss_type in ("ipo", "simpo"))
        n = seq.size(0) // 2
        nll = mean_nll(logps[:n], answer[:n]) if self.cpo_alpha != 0 else torch.tensor(0.0, device=seq.device)
        return seq[:n], seq[n:], logits[:n], logits[n:], nll


class VisionORPOTrainer(_RowsFromCollator, ORPOTrainer):
    def concatenated_forward(self, model, batch):
        logps, logits = token_logps(model, batch)
        seq = sequence_logps(logps, batch["completion_mask"][:, 1:], average=True)
        n = seq.size(0) // 2
        # TRL's ORPO takes the SFT term over the chosen prompt and answer; image placeholders are not text to learn.
        targets = text_targets(batch, image_token_ids(self.accelerator.unwrap_model(model)))[:, 1:]
        nll = mean_nll(logps[:n], targets[:n])
        return seq[:n], seq[n:], logits[:n, :-1], logits[n:, :-1], nll


class VisionRewardTrainer(_RowsFromCollator, RewardTrainer):
    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        return dataset  # rows are tokenized with their images by the collator

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # The score is read at the last real token of each whole sequence; which tokens are the answer is not needed.
        inputs = {k: v for k, v in inputs.items() if k != "completion_mask"}
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
