"""GRPO's generation copy: a bf16 copy of the LoRA policy with its adapters merged in, refreshed after every update."""

import copy
from pathlib import Path

import pytest
import torch
from conftest import TINY, build_trainer, run_cli

GRPO = [
    *TINY,
    "algorithm=grpo",
    "dataset=arith_math",
    "train.per_device_train_batch_size=4",
    "algorithm.num_generations=2",
    "algorithm.max_completion_length=8",
    "train.logging_steps=1",
    "algorithm.reward_funcs=[helpers.custom_rewards:Scaled]",
    "train.learning_rate=0.05",
]
TESTS = str(Path(__file__).resolve().parent)


def merged_bf16(policy):
    """The policy with its adapters merged, in bf16, as a newly built model (nothing carried over from the policy's
    module objects but the weights)."""
    merged = copy.deepcopy(policy).merge_and_unload()
    fresh = type(merged)(merged.config)
    fresh.load_state_dict(merged.state_dict())
    return fresh.to(torch.bfloat16).eval()


@pytest.fixture
def trained(compose, tmp_path, tiny_model_dir):
    """A GRPO trainer with the copy, after two optimizer steps (the adapters have moved away from zero)."""
    trainer = build_trainer(
        compose, tmp_path, [*GRPO, "tuner.dropout=0", "algorithm.generation_copy=on", "train.max_steps=2"]
    )
    trainer.train()
    return trainer


def test_the_copy_holds_the_merged_policy_in_bf16_after_each_update(trained):
    gen = trained.generation_copy
    assert gen is not None and gen.refreshed_at == 1  # refreshed before the second step's generation
    reference = merged_bf16(trained.model)
    names = [n for n, _ in reference.named_parameters() if "proj" in n]
    stale = [n for n in names if not torch.equal(gen.model.get_parameter(n), reference.get_parameter(n))]
    assert stale  # the policy moved during the second step: the copy is one update behind until it is refreshed
    gen.refresh(trained.state.global_step)
    for name, param in reference.named_parameters():
        assert param.dtype == torch.bfloat16
        assert torch.equal(gen.model.get_parameter(name), param), name


def test_the_copy_computes_with_its_own_weights(trained):
    # Not through a forward bound to the policy: the same logits and answers as an independently merged bf16 model.
    gen = trained.generation_copy
    gen.refresh(trained.state.global_step)
    reference = merged_bf16(trained.model)
    ids = torch.tensor([[1, 5, 9, 14, 3], [1, 7, 2, 8, 11]])
    with torch.no_grad():
        assert torch.equal(gen.model(input_ids=ids).logits, reference(input_ids=ids).logits)
        answers = [
            m.generate(input_ids=ids, max_new_tokens=12, do_sample=False, pad_token_id=0)
            for m in (gen.model, reference)
        ]
    assert torch.equal(answers[0], answers[1])


def test_the_copy_samples_from_the_policys_distribution_within_bf16_rounding(trained):
    # The loss is computed by the policy itself; the copy only decides which answers are drawn. Its next-token
    # log-probabilities differ from the fp32 policy's by bf16 rounding: 8 significant bits (relative error 2^-9)
    # on weights and activations, through 2 layers, on logits of size ~0.1-1. Measured here: mean 9e-4, max 2e-3
    # nats; the bounds leave 5-10x room.
    gen = trained.generation_copy
    gen.refresh(trained.state.global_step)
    ids = torch.randint(3, 1000, (4, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        policy = torch.log_softmax(trained.model(input_ids=ids).logits.float(), -1)
        bf16 = torch.log_softmax(gen.model(input_ids=ids).logits.float(), -1)
    p = policy.exp()
    diff = (p * (policy - bf16).abs()).sum(-1)  # expected |difference| under the policy's own distribution
    assert diff.mean() < 0.005 and diff.max() < 0.02, (diff.mean(), diff.max())
    assert not torch.equal(policy, bf16)  # not the same computation (fp32 against bf16)


def test_auto_uses_the_copy_only_with_bf16_on_a_cpu(compose, tmp_path, tiny_model_dir):
    from rlhf_lab.algorithms.grpo.build import use_generation_copy
    from rlhf_lab.config.run import build_run
    from rlhf_lab.data.load import load_splits
    from rlhf_lab.training.pipeline import load_inputs

    run = build_run(compose([*GRPO]), tmp_path)
    splits = load_splits(run.dataset, run.spec.data_format, run.train.seed)
    for bf16 in (True, False):
        inputs = load_inputs(run, splits, bf16)
        assert use_generation_copy(run, inputs) is (bf16 and not torch.cuda.is_available())
    off = build_run(compose([*GRPO, "algorithm.generation_copy=off"]), tmp_path / "off")
    assert use_generation_copy(off, load_inputs(off, splits, True)) is False


@pytest.mark.parametrize(
    "override, reason",
    [
        ("tuner=full", "it merges LoRA adapters, not tuner=full"),
        ("distributed=zero2", "it needs the whole policy in each process, not distributed=deepspeed"),
    ],
)
def test_on_where_it_cannot_work_is_a_config_error(tmp_path, override, reason):
    proc = run_cli([*GRPO, "algorithm.generation_copy=on", override], cwd=tmp_path, env={"PYTHONPATH": TESTS})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"config error: algorithm.generation_copy: cannot be on: {reason}; use auto or off"
    )


def test_on_with_image_rows_is_a_config_error_before_the_model_loads(tmp_path):
    proc = run_cli(
        [
            "model=tiny_vl",
            "dataset=shapes",
            "algorithm=grpo",
            "algorithm.generation_copy=on",
            "algorithm.num_generations=2",
            "train.per_device_train_batch_size=2",
            f"hydra.run.dir={tmp_path}/run",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "Loading weights" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "config error: algorithm.generation_copy: cannot be on with image rows; use auto or off"
    )


def test_the_copy_draws_its_samples_without_multinomial(compose, tmp_path, tiny_model_dir, monkeypatch):
    trainer = build_trainer(compose, tmp_path, [*GRPO, "algorithm.generation_copy=on", "train.max_steps=1"])
    calls = []
    multinomial = torch.multinomial
    monkeypatch.setattr(torch, "multinomial", lambda *a, **k: calls.append(1) or multinomial(*a, **k))
    trainer.train()
    assert trainer.state.global_step == 1 and trainer.state.log_history[0]["num_tokens"] > 0
    assert calls == []  # drawn by inverse CDF (tests/test_fast_sampling.py checks its distribution)
