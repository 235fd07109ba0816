"""Trainer settings shared by every algorithm (the `train` node)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from rlhf_lab.config.checks import in_range, one_of, positive
from rlhf_lab.config.fields import doc
from rlhf_lab.errors import ConfigError

# transformers' SchedulerType values (listed here so that checking a config imports nothing heavy).
LR_SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "reduce_lr_on_plateau",
    "cosine_with_min_lr",
    "cosine_warmup_with_min_lr",
    "warmup_stable_decay",
    "greedy",
)


@dataclass
class TrainConfig:
    max_steps: int = doc(-1, "Stop after this many optimizer steps (-1 = run num_train_epochs).")
    num_train_epochs: float = doc(1.0, "Passes over the training rows (when max_steps is -1).")
    # LoRA-sized default (as ms-swift).
    learning_rate: float = doc(1e-4, "Peak learning rate; use ~1e-5 or lower for tuner=full.")
    per_device_train_batch_size: int = doc(4, "Rows per process in each training micro-batch (answers for GRPO, PPO).")
    per_device_eval_batch_size: int = doc(8, "Rows per process in each evaluation batch.")
    gradient_accumulation_steps: int = doc(2, "Micro-batches accumulated into each optimizer step.")
    max_length: int = doc(512, "Most prompt + completion tokens per row; longer ones follow dataset.truncation.")
    seed: int = doc(42, "Random seed of the run (data order, rows drawn by SOURCE#N, sampling, new weights).")
    # Each checkpoint is written under a temporary name and renamed when complete.
    save_steps: int = doc(
        500, "Checkpoint every N optimizer steps (0 = only the final model; a stop signal still checkpoints)."
    )
    save_total_limit: Optional[int] = doc(None, "Keep the newest N complete checkpoints (null = all).")
    # never keeps the earlier checkpoints under another name.
    resume: str = doc(
        "auto", "auto (this run directory's newest complete checkpoint, if any), never, or a checkpoint-<step> path."
    )
    trust_checkpoint: bool = doc(
        False,
        "Resume under ZeRO or sharded FSDP (which unpickle checkpoints) from one that your runs did not write.",
    )
    logging_steps: int = doc(5, "Log metrics every N optimizer steps.")
    bf16: Any = doc("auto", "auto: bf16 where it is fast (CUDA with bf16, CPUs with AMX), else fp32; or true/false.")
    gradient_checkpointing: bool = doc(False, "Recompute activations in backward: less memory, ~30% more time.")
    lr_scheduler_type: str = doc("cosine", "Learning-rate schedule (transformers' SchedulerType: linear, cosine, ...).")
    warmup_ratio: float = doc(0.05, "Fraction of the training steps over which the learning rate warms up from 0.")
    weight_decay: float = doc(0.1, "Weight decay of the optimizer.")
    max_grad_norm: float = doc(1.0, "Clip the gradient norm to this (0 = no clipping).")
    stop_on_nan: bool = doc(True, "Stop the run, as failed, at the first logged NaN or infinite loss or grad norm.")
    eval: bool = doc(True, "Evaluate on the held-out rows before and after training (accuracy, reward margin).")
    dataset_num_proc: Optional[int] = doc(None, "Workers for the data pipeline's map steps (null = in-process).")

    def __post_init__(self) -> None:
        if self.max_steps == 0 or self.max_steps < -1:
            raise ConfigError("max_steps", f"must be -1 (use num_train_epochs) or > 0, got {self.max_steps}")
        positive("num_train_epochs", self.num_train_epochs)
        positive("learning_rate", self.learning_rate)
        positive("max_grad_norm", self.max_grad_norm, allow_zero=True)
        positive("weight_decay", self.weight_decay, allow_zero=True)
        in_range("warmup_ratio", self.warmup_ratio, 0.0, 1.0)
        positive("per_device_train_batch_size", self.per_device_train_batch_size)
        positive("per_device_eval_batch_size", self.per_device_eval_batch_size)
        positive("gradient_accumulation_steps", self.gradient_accumulation_steps)
        positive("max_length", self.max_length)
        positive("save_steps", self.save_steps, allow_zero=True)
        positive("logging_steps", self.logging_steps)
        if self.save_total_limit is not None:
            positive("save_total_limit", self.save_total_limit)
        # numpy's and torch's generators take seeds in [0, 2**32).
        in_range("seed", self.seed, 0, 2**32, high_open=True)
        if self.dataset_num_proc is not None:
            positive("dataset_num_proc", self.dataset_num_proc)
        one_of("bf16", self.bf16, ("auto", True, False))
        one_of("lr_scheduler_type", self.lr_scheduler_type, LR_SCHEDULERS)
        if not self.resume.strip():
            raise ConfigError("resume", "is empty; use auto, never or the path of a checkpoint-<step> directory")
