"""Trainer arguments every algorithm shares, read from the Run's `train` node."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from rlhf_lab.config.run import Run
from rlhf_lab.data.load import DataSplits


@dataclass
class TrainInputs:
    """What every builder receives besides the Run."""

    model: Any
    tokenizer: Any
    splits: DataSplits
    bf16: bool
    callbacks: list = field(default_factory=list)
    # peft config for LoRA (the trainer wraps the model), None for full tuning.
    peft_config: Any = None
    # A vision-language model's processor (images and text), None for text-only models.
    processor: Any = None
    # Text rows read and tokenized per batch (dataset.lazy_tokenize; algorithms/lazy_rows.py), None for up front
    # (rows with images always take the vision path, which is per batch too).
    lazy: Any = None

    @property
    def vision(self) -> bool:
        """Whether the run trains on images (a vision-language model and rows that have an images list)."""
        return self.processor is not None and "images" in (self.splits.train[0] if len(self.splits.train) else {})

    @property
    def index_rows(self) -> bool:
        """Whether the trainer is given row indices that only the collator reads."""
        return self.vision or self.lazy is not None

    def trainer_kwargs(self, train_dataset) -> dict:
        """The keyword arguments every TRL trainer takes the same way."""
        return dict(
            model=self.model,
            train_dataset=train_dataset,
            processing_class=self.processor if self.vision else self.tokenizer,
            callbacks=self.callbacks,
            peft_config=self.peft_config,
        )


def trl_dataset(rows: list[dict], columns: tuple[str, ...] | None = None):
    """The rows as the datasets.Dataset a TRL trainer reads: only the named columns (all when None)."""
    from datasets import Dataset

    return Dataset.from_list(rows if columns is None else [{k: r[k] for k in columns} for r in rows])


def trainer_args(run: Run, bf16: bool, index_rows: bool = False) -> dict:
    t = run.train
    # Datasets of row indices (vision rows, rows read per batch) are read by the collator only: Trainer must not
    # drop the column.
    columns = {"remove_unused_columns": False} if index_rows else {}
    return dict(
        output_dir=str(run.run_dir / "checkpoints"),
        run_name=run.name,
        max_steps=t.max_steps,
        num_train_epochs=t.num_train_epochs,
        learning_rate=t.learning_rate,
        per_device_train_batch_size=t.per_device_train_batch_size,
        per_device_eval_batch_size=t.per_device_eval_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        seed=t.seed,
        data_seed=t.seed,
        save_strategy="steps" if t.save_steps else "no",
        **({"save_steps": t.save_steps} if t.save_steps else {}),
        # rlhf_lab renames complete checkpoints into place and keeps the newest save_total_limit itself.
        save_total_limit=None,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        bf16=bf16,
        gradient_checkpointing=t.gradient_checkpointing,
        lr_scheduler_type=t.lr_scheduler_type,
        warmup_steps=t.warmup_ratio,  # a float below 1 is a fraction of the total steps
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        # Trackers are attached as explicit callbacks (tracking/trackers.py), so the run's wandb settings win.
        report_to="none",
        dataset_num_proc=t.dataset_num_proc,
        dataloader_num_workers=0,
        disable_dropout=run.algorithm.disable_dropout,
        **engine_args(run.distributed),
        **columns,
    )


def engine_args(cfg) -> dict:
    """The distributed engine's settings as transformers' TrainingArguments takes them."""
    import torch

    # Without GPUs transformers needs use_cpu: to run bf16 autocast on the CPU at all, and to treat CPU processes as
    # distributed (which then talk over gloo).
    if cfg.backend == "single":
        return {} if torch.cuda.is_available() else dict(use_cpu=True)
    args = {} if torch.cuda.is_available() else dict(use_cpu=True, ddp_backend="gloo")
    if cfg.backend == "ddp":
        args.update(ddp_find_unused_parameters=cfg.find_unused_parameters, ddp_bucket_cap_mb=cfg.bucket_cap_mb)
    elif cfg.backend == "deepspeed":
        args.update(deepspeed=cfg.deepspeed_json())
    elif cfg.backend == "fsdp":
        args.update(fsdp=True, fsdp_config=cfg.fsdp_config())
    return args


def extra_model(run: Run, key: str):
    """How the algorithm's model in field `key` (ref_model, reward_model, value_model, teacher_model) loads: with the
    policy's dtype and attention kernel, but its own revision and trust_remote_code (never the policy's: pinning or
    trusting the policy says nothing about another checkpoint). Returns (its ModelConfig, the setting naming it)."""
    revision, trust = run.algorithm.model_pins(key)
    path = run.algorithm.model_paths()[key]
    cfg = dataclasses.replace(
        run.model, name_or_path=path, revision=revision, trust_remote_code=trust, num_hidden_layers=None
    )
    return cfg, f"algorithm.{key}"


def reference_model(run: Run, inputs: TrainInputs, ref_path: str | None):
    """The frozen reference of DPO/KTO-style methods.

    LoRA without ref_path: None, and the trainer uses the adapter-disabled base (no second copy).
    Full tuning without ref_path: a frozen copy of the base model. With ref_path: that model (algorithm.ref_model).
    """
    if ref_path is None and inputs.peft_config is not None:
        return None
    from rlhf_lab.models.load import load_causal_lm

    if ref_path is None:
        return load_causal_lm(run.model, inputs.bf16)
    cfg, key = extra_model(run, "ref_model")
    return load_causal_lm(cfg, inputs.bf16, key=key)


def load_reward_model(run: Run, bf16: bool):
    """The trained reward model named by algorithm.reward_model and its tokenizer, frozen."""
    from rlhf_lab.errors import ModelError
    from rlhf_lab.models.load import is_vision_model, load_causal_lm, load_tokenizer

    path = run.algorithm.reward_model
    cfg, key = extra_model(run, "reward_model")
    if is_vision_model(cfg, key=key):
        # The online trainers score answers as text; a vision reward model would silently judge without its images.
        raise ModelError(
            f"algorithm.reward_model={path} is a vision-language reward model; {run.algorithm.name} scores answers "
            "as text only, so use a text reward model or reward functions (algorithm.reward_funcs)"
        )
    tokenizer = load_tokenizer(cfg, key)
    model = load_causal_lm(cfg, bf16, head="reward", key=key)
    model.config.pad_token_id = tokenizer.pad_token_id  # scores are read at the last real token
    model.requires_grad_(False).eval()
    return model, tokenizer


def vision_pairs(run: Run, inputs: TrainInputs, extra=None) -> dict:
    """Trainer keyword arguments for pairs with images on the trainers TRL cannot feed images itself (CPO, SimPO,
    ORPO, reward models): the index dataset and the shared vision pair collator."""
    from rlhf_lab.vision.batches import RowsWithImages, index_dataset, pair_collator, pixel_bounds

    rows = inputs.splits.train
    collator = pair_collator(inputs.processor, rows, pixel_bounds(run), run.train.max_length)
    if extra is not None:
        collator = RowsWithImages(collator.rows, collator.bounds, collator.inner, extra)
    kwargs = inputs.trainer_kwargs(index_dataset(rows))
    kwargs.update(processing_class=inputs.tokenizer, processor=inputs.processor, data_collator=collator)
    return kwargs
