"""DPO settings TRL 1.16 lacks, checked against their formulas on TRL's own loss code path."""

import math

import pytest
import torch

from rlhf_lab.algorithms.preference.config import DPOConfig
from rlhf_lab.algorithms.preference.dpo import loss_terms


def test_loss_terms_mapping():
    assert loss_terms(DPOConfig()) == (["sigmoid"], [1.0])
    losses, weights = loss_terms(DPOConfig(label_smoothing=0.1))
    assert losses == ["sigmoid", "robust"] and weights == pytest.approx([1.8, -0.8])
    assert loss_terms(DPOConfig(rpo_alpha=0.5)) == (["sigmoid", "sft"], [1.0, 0.5])
    assert loss_terms(DPOConfig(loss_type=["ipo", "bco_pair"], loss_weights=[0.5, 2.0])) == (
        ["ipo", "bco_pair"],
        [0.5, 2.0],
    )


def make_trainer(tiny_model_dir, tmp_path, **dpo):
    """A DPOTrainer on the tiny model whose policy differs from its reference (perturbed LoRA B)."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig as TRLDPOConfig
    from trl import DPOTrainer

    cfg = DPOConfig(**dpo)
    losses, weights = loss_terms(cfg)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    row = {
        "prompt": [{"role": "user", "content": "What is 2 + 3?"}],
        "chosen": [{"role": "assistant", "content": "2 + 3 = 5."}],
        "rejected": [{"role": "assistant", "content": "2 + 3 = 6, I think."}],
    }
    args = TRLDPOConfig(
        output_dir=str(tmp_path),
        beta=cfg.beta,
        loss_type=losses,
        loss_weights=weights,
        label_smoothing=cfg.label_smoothing,
        per_device_train_batch_size=1,
        report_to="none",
        bf16=False,
        gradient_checkpointing=False,
    )
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list([row]),
        processing_class=tokenizer,
        peft_config=LoraConfig(r=4, target_modules="all-linear"),
    )
    with torch.no_grad():  # move the policy away from the adapter-disabled reference
        for name, p in trainer.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return trainer


def loss_and_metrics(trainer):
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.train()
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, batch).item()
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    chosen_tokens = batch["completion_mask"][0, 1:].sum().item()
    return loss, metrics, chosen_tokens


def test_label_smoothing_gives_the_cdpo_loss(tiny_model_dir, tmp_path):
    beta, eps = 0.5, 0.2
    loss, m, _ = loss_and_metrics(make_trainer(tiny_model_dir, tmp_path, beta=beta, label_smoothing=eps))
    # rewards/* = beta * (policy - reference) log-ratio, so beta*delta is their difference (batch of one pair).
    x = m["rewards/chosen"] - m["rewards/rejected"]
    assert abs(x) > 0.05  # the policy really differs from the reference, so the check has teeth
    logsig = lambda v: -math.log1p(math.exp(-v))  # noqa: E731
    expected = -(1 - eps) * logsig(x) - eps * logsig(-x)
    assert loss == pytest.approx(expected, rel=1e-4, abs=1e-5)
    plain = -logsig(x)
    assert abs(expected - plain) > 1e-3  # and label smoothing changes the number


def test_rpo_alpha_adds_alpha_times_the_chosen_nll(tiny_model_dir, tmp_path):
    alpha = 0.7
    base, m0, _ = loss_and_metrics(make_trainer(tiny_model_dir, tmp_path / "a", beta=0.1))
    with_rpo, m1, tokens = loss_and_metrics(make_trainer(tiny_model_dir, tmp_path / "b", beta=0.1, rpo_alpha=alpha))
    assert m0["logps/chosen"] == pytest.approx(m1["logps/chosen"], rel=1e-5)
    # TRL's sft term: mean NLL over the chosen answer's tokens.
    chosen_nll = -m1["logps/chosen"] / tokens
    assert with_rpo - base == pytest.approx(alpha * chosen_nll, rel=1e-4)
