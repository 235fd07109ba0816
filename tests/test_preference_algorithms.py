"""KTO, CPO, SimPO, ORPO and reward models on the tiny model: settings reach TRL, runs train, results reload."""

import math

import pytest
import torch
from conftest import TINY, logged_metrics, read_summary, run_cli

from rlhf_lab.config.run import build_run

# algorithm -> (extra overrides, metrics its trainer must log, what the run saves)
CASES = {
    "kto": (["dataset=arith_kto"], {"kl", "rewards/chosen", "logps/chosen"}, "adapter"),
    "cpo": ([], {"nll_loss", "rewards/margins", "rewards/accuracies"}, "adapter"),
    "simpo": ([], {"rewards/margins", "rewards/accuracies"}, "adapter"),
    "orpo": ([], {"log_odds_ratio", "log_odds_chosen", "nll_loss"}, "adapter"),
    "rm": ([], {"accuracy", "margin", "mean_reward"}, "model"),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    done = {}
    for algorithm, (extra, _, _) in CASES.items():
        tmp = tmp_path_factory.mktemp(algorithm)
        proc = run_cli([*TINY, f"algorithm={algorithm}", *extra, f"hydra.run.dir={tmp}/run"], cwd=tmp)
        assert proc.returncode == 0, f"{algorithm}: {proc.stderr[-3000:]}"
        done[algorithm] = tmp / "run"
    return done


@pytest.mark.parametrize("algorithm", list(CASES))
def test_trains_with_finite_loss_and_its_own_metrics(runs, algorithm):
    run_dir = runs[algorithm]
    s = read_summary(run_dir)
    assert s["status"] == "completed" and s["algorithm"] == algorithm and s["global_steps"] == 2
    assert math.isfinite(s["train_loss"])
    logged = logged_metrics(run_dir)
    assert CASES[algorithm][1] <= logged
    for phase in ("eval_before", "eval_after"):
        assert 0 <= s[phase]["accuracy"] <= 1 and math.isfinite(s[phase]["reward_margin"])


@pytest.mark.parametrize("algorithm", ["kto", "cpo", "simpo", "orpo"])
def test_saved_adapter_reloads(runs, algorithm, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter = runs[algorithm] / "adapter"
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(adapter))
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        trained = model(ids).logits
        with model.disable_adapter():
            base = model(ids).logits
    assert not torch.allclose(trained, base)


def test_reward_model_reloads_with_plain_transformers_and_scores_as_evaluated(runs):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rlhf_lab.data.load import load_file
    from rlhf_lab.evaluation.preference import tokenize_pair_side
    from rlhf_lab.evaluation.reward import scores
    from rlhf_lab.paths import resolve_data_path

    run_dir = runs["rm"]
    model = AutoModelForSequenceClassification.from_pretrained(run_dir / "model")
    assert model.config.num_labels == 1 and not list((run_dir / "model").glob("adapter_*"))
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "model")
    rows = load_file(resolve_data_path("pkg://rlhf_lab/demo_data/arith_pairs/val.jsonl"), "pairs", False, [])
    seqs = [tokenize_pair_side(tokenizer, r["prompt"], r[side], 512) for r in rows for side in ("chosen", "rejected")]
    s = scores(model, seqs, 8, tokenizer.pad_token_id, bf16=False)
    after = read_summary(run_dir)["eval_after"]
    # The merged, reloaded model gives the scores the run measured with its LoRA model.
    assert s[0::2].mean().item() == pytest.approx(after["score_chosen"], abs=1e-4)
    assert s[1::2].mean().item() == pytest.approx(after["score_rejected"], abs=1e-4)


def build_trainer(compose, tmp_path, overrides):
    from rlhf_lab.algorithms.common import TrainInputs
    from rlhf_lab.data.load import load_splits
    from rlhf_lab.models.load import load_causal_lm, load_tokenizer
    from rlhf_lab.models.tuners import peft_config

    run = build_run(compose(["model=tiny", "dataset.max_samples=4", *overrides]), tmp_path)
    inputs = TrainInputs(
        model=load_causal_lm(run.model, False, head=run.spec.model_head),
        tokenizer=load_tokenizer(run.model),
        splits=load_splits(run.dataset, run.spec.data_format, 0),
        bf16=False,
        peft_config=peft_config(run.tuner, run.algorithm.disable_dropout, head=run.spec.model_head),
    )
    return run.spec.load_builder()(run, inputs)


@pytest.mark.parametrize(
    "overrides,expected",
    [
        (["algorithm=simpo"], dict(loss_type="simpo", simpo_gamma=1.0, cpo_alpha=0.0, beta=2.0)),
        (
            ["algorithm=simpo", "algorithm.simpo_gamma=0.3", "algorithm.cpo_alpha=0.5"],
            dict(simpo_gamma=0.3, cpo_alpha=0.5),
        ),
        (
            ["algorithm=cpo", "algorithm.loss_type=ipo", "algorithm.beta=0.2"],
            dict(loss_type="ipo", beta=0.2, cpo_alpha=1.0),
        ),
        (["algorithm=orpo", "algorithm.beta=0.25"], dict(beta=0.25)),
        (
            [
                "algorithm=kto",
                "dataset=arith_kto",
                "algorithm.desirable_weight=1.5",
                "algorithm.undesirable_weight=0.5",
            ],
            dict(desirable_weight=1.5, undesirable_weight=0.5, beta=0.1, loss_type="kto"),
        ),
    ],
)
def test_settings_reach_the_trainer(compose, tmp_path, tiny_model_dir, overrides, expected):
    trainer = build_trainer(compose, tmp_path, overrides)
    assert {k: getattr(trainer, k) for k in expected} == expected


def test_full_tuning_kto_gets_a_frozen_copy_of_the_base_as_reference(compose, tmp_path, tiny_model_dir):
    trainer = build_trainer(compose, tmp_path, ["algorithm=kto", "dataset=arith_kto", "tuner=full"])
    ref = trainer.ref_model
    assert ref is not None and ref is not trainer.model
    for a, b in zip(ref.parameters(), trainer.model.parameters()):
        assert torch.equal(a, b)  # the base weights, before training
    lora = build_trainer(compose, tmp_path / "lora", ["algorithm=kto", "dataset=arith_kto"])
    assert lora.ref_model is None  # LoRA: the adapter-disabled base, no second copy


def test_reward_model_lora_trains_the_new_score_head(compose, tmp_path, tiny_model_dir):
    trainer = build_trainer(compose, tmp_path, ["algorithm=rm"])
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert any("score" in n for n in trainable) and any("lora_" in n for n in trainable)
