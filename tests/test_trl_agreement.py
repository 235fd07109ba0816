"""rlhf_lab trains what plain TRL trains.

For each offline algorithm (DPO, KTO, CPO, SimPO, ORPO, reward models), rlhf_lab's trainer with its speed-ups on (a
pair's prompt run once, the LM head only over scored positions) and a trainer built directly from TRL's public
classes, given the same rows, seed, settings and initial weights, log the same loss at each of 10 optimizer steps.
For GRPO, given the same generated batch, both compute the same loss and the same gradients, for each policy loss
that rlhf_lab exposes and TRL has.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from unittest.mock import patch

import pytest
import torch
from conftest import GRPO_TINY, TINY, build_trainer, move_off_reference

from rlhf_lab.algorithms.registry import load_target as target
from rlhf_lab.patches import shared_prompt
from rlhf_lab.patches.scored_positions import score_every_position

STEPS = 10
# RLHF_LAB_AGREEMENT_MODEL=smollm2_135m runs the offline comparisons on that model preset instead of the tiny one,
# under bf16 where this CPU has fast bf16 (rlhf_lab then stores the frozen base in bf16, TRL autocasts fp32
# weights; RLHF_LAB_AGREEMENT_FP32=1 keeps fp32), and prints each step's difference (pytest -s).
REAL_MODEL = os.environ.get("RLHF_LAB_AGREEMENT_MODEL")
REAL_FP32 = os.environ.get("RLHF_LAB_AGREEMENT_FP32") == "1"
# bf16 logits carry 8 significant bits: once the two runs' weights differ by a rounding (the packed layout sums
# DPO's gradients in another order), a sequence's log-probability can move by a few units of the logits' last bit
# (0.03 at a logit of 7), and DPO's loss by beta x that. Measured on SmolLM2-135M: the first two steps agree to the
# bit, later ones by up to 5% (0.0145 on a loss of 0.28); KTO, CPO, SimPO, ORPO and the reward model to the bit.
BF16_REL = 0.1
# In fp32 on SmolLM2-135M, DPO's difference grows from 1e-7 to 3.6e-6 (9.6e-6 relative) over the 10 steps.
REAL_FP32_REL = 1e-4

# The TrainingArguments rlhf_lab sets for every algorithm (algorithms/common.py), handed to TRL's config with the
# values rlhf_lab resolved; every other field keeps TRL's default, and assert_same_settings checks they agree.
SHARED = (
    "max_steps",
    "num_train_epochs",
    "learning_rate",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "seed",
    "data_seed",
    "logging_steps",
    "logging_first_step",
    "bf16",
    "gradient_checkpointing",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "max_grad_norm",
    "disable_dropout",
    "dataloader_num_workers",
)
# Fields that only say where and under which name a run is recorded.
BOOKKEEPING = {"output_dir", "logging_dir", "run_name"}

# algorithm -> (dataset, TRL config class, TRL trainer class, the algorithm fields rlhf_lab sets, TRL's row columns,
# model head)
PREFERENCE = {
    "dpo": (
        "arith_pairs",
        "trl:DPOConfig",
        "trl:DPOTrainer",
        ("beta", "loss_type", "loss_weights", "label_smoothing", "max_length", "precompute_ref_log_probs"),
        ("prompt", "chosen", "rejected"),
        "causal_lm",
    ),
    "kto": (
        "arith_kto",
        "trl:KTOConfig",
        "trl:KTOTrainer",
        ("beta", "desirable_weight", "undesirable_weight", "loss_type", "max_length", "precompute_ref_log_probs"),
        ("prompt", "completion", "label"),
        "causal_lm",
    ),
    "cpo": (
        "arith_pairs",
        "trl.experimental.cpo:CPOConfig",
        "trl.experimental.cpo:CPOTrainer",
        ("beta", "cpo_alpha", "loss_type", "label_smoothing", "max_length"),
        ("prompt", "chosen", "rejected"),
        "causal_lm",
    ),
    # SimPO is TRL's CPO trainer with loss_type=simpo (cpo_alpha=0 by default).
    "simpo": (
        "arith_pairs",
        "trl.experimental.cpo:CPOConfig",
        "trl.experimental.cpo:CPOTrainer",
        ("beta", "cpo_alpha", "loss_type", "label_smoothing", "max_length", "simpo_gamma"),
        ("prompt", "chosen", "rejected"),
        "causal_lm",
    ),
    "orpo": (
        "arith_pairs",
        "trl.experimental.orpo:ORPOConfig",
        "trl.experimental.orpo:ORPOTrainer",
        ("beta", "max_length"),
        ("prompt", "chosen", "rejected"),
        "causal_lm",
    ),
    "rm": (
        "arith_pairs",
        "trl:RewardConfig",
        "trl:RewardTrainer",
        ("center_rewards_coefficient", "max_length"),
        ("prompt", "chosen", "rejected"),
        "reward",
    ),
}
# The algorithms whose rlhf_lab trainer has speed-ups over TRL's (both use TRL's fused LM head; DPO also packs pairs).
FUSED_HEAD = ("dpo", "kto")


def training_rows(compose, tmp_path, overrides):
    """(the run, its training rows) read as rlhf_lab reads them (conftest.build_trainer does the same)."""
    from rlhf_lab.config.run import build_run
    from rlhf_lab.data.load import load_splits

    run = build_run(compose(list(overrides)), tmp_path)
    return run, load_splits(run.dataset, run.spec.data_format, run.train.seed, images=run.spec.images).train


def plain_model(tiny_model_dir, head):
    """The tiny model as a TRL user loads it: fp32, transformers' own classes."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    if head == "reward":
        return AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, dtype=torch.float32, num_labels=1)
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)


def plain_lora(lab_model):
    """A LoraConfig written out with the numbers of rlhf_lab's adapter (copy_weights checks which modules got one)."""
    from peft import LoraConfig

    cfg = lab_model.peft_config["default"]
    return LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules="all-linear",
        task_type=cfg.task_type,
    )


def plain_args(config_class, lab_args, fields, tmp_path):
    """TRL's own config class, given rlhf_lab's resolved values of the named fields and nothing else."""
    values = {name: getattr(lab_args, name) for name in (*SHARED, *fields)}
    return config_class(
        output_dir=str(tmp_path / "plain"), report_to="none", save_strategy="no", use_cpu=True, **values
    )


def assert_same_settings(lab_args, plain_args_):
    """Every config field agrees, bar where the runs are recorded: no setting rlhf_lab changes was left out."""
    lab, plain = lab_args.to_dict(), plain_args_.to_dict()
    differing = {k for k in lab.keys() | plain.keys() if lab.get(k) != plain.get(k)}
    assert differing <= BOOKKEEPING, {k: (lab.get(k), plain.get(k)) for k in differing - BOOKKEEPING}


def copy_weights(src, dst) -> int:
    """Give dst every parameter of src, by name: LoRA's random init and a reward model's new score head cannot then
    differ. The trained parameters must be the same set. Returns how many trained tensors there are."""
    source, dest = dict(src.named_parameters()), dict(dst.named_parameters())
    assert source.keys() == dest.keys()
    trained = {n for n, p in source.items() if p.requires_grad}
    assert trained == {n for n, p in dest.items() if p.requires_grad}
    with torch.no_grad():
        for name, p in dest.items():
            p.copy_(source[name])
    return len(trained)


@contextmanager
def watch_head():
    """Counts of what the LM head saw: {"rows": positions projected through the vocabulary, "packed": pair batches
    run in the shared-prompt layout}."""
    import trl.trainer.utils as trl_utils

    seen = {"rows": 0, "packed": 0}
    apply, pack = trl_utils._ChunkedLogProbFunction.apply, shared_prompt.pack_pairs

    def counted_apply(hidden, *args):
        seen["rows"] += hidden.shape[0]
        return apply(hidden, *args)

    def counted_pack(*args):
        packed = pack(*args)
        seen["packed"] += packed is not None
        return packed

    with (
        patch.object(trl_utils._ChunkedLogProbFunction, "apply", counted_apply),
        patch.object(shared_prompt, "pack_pairs", counted_pack),
    ):
        yield seen


def step_losses(trainer) -> list[float]:
    return [log["loss"] for log in trainer.state.log_history if "loss" in log]


@pytest.mark.parametrize("algorithm", list(PREFERENCE))
def test_same_losses_as_plain_trl_at_every_step(compose, tmp_path, tiny_model_dir, algorithm):
    from datasets import Dataset
    from transformers import AutoTokenizer

    from rlhf_lab.models.load import local_checkpoint
    from rlhf_lab.models.precision import cpu_has_fast_bf16
    from rlhf_lab.models.source import resolve_source

    dataset, config_name, trainer_name, fields, columns, head = PREFERENCE[algorithm]
    overrides = [
        *TINY,
        *([f"model={REAL_MODEL}"] if REAL_MODEL else []),
        f"algorithm={algorithm}",
        f"dataset={dataset}",
        f"train.max_steps={STEPS}",
        "train.logging_steps=1",
        "train.per_device_train_batch_size=4",
        "train.save_steps=0",
        # A packed pair has other tensor shapes than TRL's two rows: their dropout masks could not agree.
        "tuner.dropout=0",
    ]
    bf16 = bool(REAL_MODEL) and not REAL_FP32 and cpu_has_fast_bf16()
    try:
        lab = build_trainer(compose, tmp_path / "lab", overrides, bf16=bf16)
        run, rows = training_rows(compose, tmp_path / "rows", overrides)
        model_dir = local_checkpoint(resolve_source(run.model.name_or_path)) if REAL_MODEL else tiny_model_dir
        if algorithm == "kto":
            # TRL reads KTO rows in order (a row's KL answer is its neighbour's), so rlhf_lab shuffles them once.
            from rlhf_lab.algorithms.preference.kto import shuffled

            rows = shuffled(rows, run.train.seed)
            assert lab.train_dataset["completion"] == [r["completion"] for r in rows]
        plain = target(trainer_name)(
            model=plain_model(model_dir, head),
            args=plain_args(target(config_name), lab.args, fields, tmp_path),
            train_dataset=Dataset.from_list([{k: r[k] for k in columns} for r in rows]),
            processing_class=AutoTokenizer.from_pretrained(model_dir),
            peft_config=plain_lora(lab.model),
        )
        # Compared once both are built: CPO and ORPO set remove_unused_columns=False on the config they are given.
        assert_same_settings(lab.args, plain.args)
        assert copy_weights(lab.model, plain.model) > 0

        with watch_head() as lab_head:
            lab.train()
        score_every_position()  # TRL's layout as shipped (rlhf_lab's builder switched the compact one on)
        with watch_head() as plain_head:
            plain.train()
    finally:
        score_every_position()
    if algorithm in FUSED_HEAD:  # the speed-ups ran on rlhf_lab's side only
        assert 0 < lab_head["rows"] < plain_head["rows"] / 2
        assert (lab_head["packed"] > 0) == (algorithm == "dpo") and plain_head["packed"] == 0

    lab_losses, plain_losses = step_losses(lab), step_losses(plain)
    assert len(lab_losses) == len(plain_losses) == STEPS
    if REAL_MODEL:
        diffs = [abs(a - b) for a, b in zip(lab_losses, plain_losses)]
        rel = max(d / abs(b) for d, b in zip(diffs, plain_losses))
        print(
            f"\n{algorithm} on {REAL_MODEL} (bf16={bf16}): max abs difference {max(diffs):.3g} (relative {rel:.3g});"
            f" loss {lab_losses[0]:.4f} -> {lab_losses[-1]:.4f}; per step {[f'{d:.2g}' for d in diffs]}"
        )
    assert max(lab_losses) - min(lab_losses) > 1e-3  # it trained: the loss moved far beyond the bound below
    # fp32 on both sides. Measured: DPO differs by at most 4.2e-7 (6e-7 relative, a few float steps at 0.69: the
    # packed layout sums attention and the head's gradient over other shapes), and the difference stays at that size
    # over the 10 steps; KTO, CPO, SimPO, ORPO and the reward model agree to the bit. The bound leaves ~10x room.
    if bf16:
        assert lab_losses[0] == plain_losses[0]  # the same weights and rows give the same first loss to the bit
    for step, (a, b) in enumerate(zip(lab_losses, plain_losses), start=1):
        assert a == pytest.approx(b, rel=BF16_REL if bf16 else REAL_FP32_REL if REAL_MODEL else 5e-6), (
            f"step {step}: rlhf_lab {a} vs TRL {b}"
        )


# ---- GRPO: the same generated batch, the same loss ----

AGREEMENT_GRPO = [
    *GRPO_TINY,
    "train.save_steps=0",
    "tuner.dropout=0",
    # Answers of other lengths get other rewards, so the advantages are not all zero.
    "algorithm.reward_funcs=[helpers.custom_rewards:Scaled]",
]
# The GRPOConfig fields rlhf_lab sets (algorithms/grpo/build.py).
GRPO_FIELDS = (
    "num_generations",
    "max_completion_length",
    "temperature",
    "top_p",
    "top_k",
    "repetition_penalty",
    "beta",
    "epsilon",
    "epsilon_high",
    "loss_type",
    "scale_rewards",
    "num_iterations",
    "importance_sampling_level",
    "reward_weights",
    "sapo_temperature_pos",
    "sapo_temperature_neg",
    "mask_truncated_completions",
    "use_vllm",
    "log_completions",
    "remove_unused_columns",
)


def end_answers_early(inputs, pad_token_id, lengths):
    """Cut answers short, as an end-of-sequence token would: the random tiny model fills every answer to
    max_completion_length, and with equal lengths the loss types' normalisations coincide. The log-probs kept are
    unchanged (attention is causal), so the batch stays consistent."""
    mask, ids = inputs["completion_mask"].clone(), inputs["completion_ids"].clone()
    for row, length in lengths.items():
        mask[row, length:] = 0
        ids[row, length:] = pad_token_id
    return {**inputs, "completion_mask": mask, "completion_ids": ids, "num_items_in_batch": mask.sum()}


def loss_and_grads(trainer, inputs):
    """A training micro-step's loss and gradients on the given generated batch."""
    # Set by Trainer's training loop before each optimizer step.
    trainer.current_gradient_accumulation_steps = trainer.args.gradient_accumulation_steps
    trainer.model.zero_grad()
    loss = trainer.compute_loss(trainer.model, dict(inputs))
    loss.backward()
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    return loss.item(), grads


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
def test_grpo_same_loss_as_plain_trl_on_the_same_completions(compose, tmp_path, tiny_model_dir, loss_type):
    from helpers.custom_rewards import Scaled
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    try:
        lab = build_trainer(compose, tmp_path / "lab", [*AGREEMENT_GRPO, f"algorithm.loss_type={loss_type}"])
        plain = GRPOTrainer(
            model=plain_model(tiny_model_dir, "causal_lm"),
            reward_funcs=[Scaled()],
            args=plain_args(GRPOConfig, lab.args, GRPO_FIELDS, tmp_path),
            train_dataset=lab.train_dataset,
            processing_class=AutoTokenizer.from_pretrained(tiny_model_dir),
            peft_config=plain_lora(lab.model),
        )
        assert_same_settings(lab.args, plain.args)
        move_off_reference(lab.model)  # so the KL term and the gradients depend on the policy's log-probs
        assert copy_weights(lab.model, plain.model) > 0

        lab.model.train()
        plain.model.train()
        torch.manual_seed(0)
        inputs = lab._generate_and_score_completions(next(iter(lab.get_train_dataloader())))
        assert inputs["advantages"].abs().sum() > 0 and "ref_per_token_logps" in inputs
        inputs = end_answers_early(inputs, lab.processing_class.pad_token_id, {0: 3, 2: 6})
        with watch_head() as lab_head:
            fast = loss_and_grads(lab, inputs)
        score_every_position()  # TRL's layout as shipped
        with watch_head() as plain_head:
            reference = loss_and_grads(plain, inputs)
    finally:
        score_every_position()
    assert 0 < lab_head["rows"] < plain_head["rows"]  # the head scored only the answers on rlhf_lab's side

    # fp32 on both sides, the same rows through the same head; only the number of positions projected differs.
    # Measured: loss and gradients agree to the bit. The bounds allow a few float steps of other matmul blockings.
    assert fast[0] == pytest.approx(reference[0], rel=1e-6)
    assert fast[0] != 0
    assert fast[1].keys() == reference[1].keys() and fast[1]
    for name, grad in reference[1].items():
        torch.testing.assert_close(fast[1][name], grad, rtol=1e-5, atol=1e-6 * grad.abs().max().item(), msg=name)
