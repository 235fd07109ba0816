"""Trainer settings shared by every algorithm (the `train` node)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from rlhf_lab.errors import ConfigError
from rlhf_lab.schema.checks import one_of, positive


# transformers' SchedulerType values (listed here so that checking a config imports nothing heavy).
LR_SCHEDULERS = (
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "inverse_sqrt",
    "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr", "warmup_stable_decay", "greedy",
)


@dataclass
class TrainConfig:
    # Stop after this many optimizer steps (-1 = run num_train_epochs).
    max_steps: int = -1
    num_train_epochs: float = 1.0
    # LoRA-sized default (as ms-swift); use ~1e-5 or lower for tuner=full.
    learning_rate: float = 1e-4
    per_device_train_batch_size: int = 4
    per_device_eval_batch_size: int = 8
    gradient_accumulation_steps: int = 2
    # Prompt + completion tokens; longer rows are truncated.
    max_length: int = 512
    seed: int = 42
    # Checkpoint every N optimizer steps (0 = only the final model; a stop signal still checkpoints). Each one is
    # written under a temporary name and renamed when complete.
    save_steps: int = 500
    # Keep the newest N complete checkpoints (null = all).
    save_total_limit: Optional[int] = None
    # Continue from a checkpoint: auto (the newest complete one in this run directory, if any), never (start over;
    # earlier checkpoints are kept under another name) or the path of a checkpoint-<step> directory.
    resume: str = "auto"
    logging_steps: int = 5
    # auto: bf16 where the hardware runs it fast (CUDA with bf16, CPUs with AMX), else fp32. Or true/false.
    bf16: Any = "auto"
    # Recompute activations in the backward pass: less memory, ~30% more time.
    gradient_checkpointing: bool = False
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.05
    weight_decay: float = 0.1
    max_grad_norm: float = 1.0
    # Evaluate on the held-out set before and after training (preference accuracy, reward margin).
    eval: bool = True
    # Threads for the data pipeline's map steps (null = in-process).
    dataset_num_proc: Optional[int] = None

    def __post_init__(self) -> None:
        if self.max_steps == 0 or self.max_steps < -1:
            raise ConfigError("max_steps", f"must be -1 (use num_train_epochs) or > 0, got {self.max_steps}")
        positive("num_train_epochs", self.num_train_epochs)
        positive("learning_rate", self.learning_rate)
        positive("per_device_train_batch_size", self.per_device_train_batch_size)
        positive("per_device_eval_batch_size", self.per_device_eval_batch_size)
        positive("gradient_accumulation_steps", self.gradient_accumulation_steps)
        positive("max_length", self.max_length)
        positive("save_steps", self.save_steps, allow_zero=True)
        positive("logging_steps", self.logging_steps)
        if self.save_total_limit is not None:
            positive("save_total_limit", self.save_total_limit)
        one_of("bf16", self.bf16, ("auto", True, False))
        one_of("lr_scheduler_type", self.lr_scheduler_type, LR_SCHEDULERS)
        if not self.resume.strip():
            raise ConfigError("resume", "is empty; use auto, never or the path of a checkpoint-<step> directory")
        positive("warmup_ratio", self.warmup_ratio, allow_zero=True)
        positive("weight_decay", self.weight_decay, allow_zero=True)
        positive("max_grad_norm", self.max_grad_norm, allow_zero=True)
