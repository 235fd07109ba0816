"""algorithm.advantage_estimator (grpo, rloo, reinforce_plus_plus) and kl_in_reward: each estimator's advantages
against its formula, written out here by hand, on hand-made rewards and inside a training batch."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from conftest import GRPO_TINY, ROOT, build_trainer, logged_metrics, move_off_reference, run_cli

from rlhf_lab.algorithms.grpo.advantages import advantages

REWARDS = [1.0, 0.0, 0.0, 1.0, 3.0, 1.0, 2.0, 2.0]  # two groups of four answers
N = 4


def by_hand(rewards, n, estimator, scale):
    """The estimators' formulas, one answer at a time, with Python's statistics (unbiased std, + 1e-4)."""
    groups = [rewards[i : i + n] for i in range(0, len(rewards), n)]
    centred = []
    for group in groups:
        for i, r in enumerate(group):
            others = group[:i] + group[i + 1 :]
            baseline = statistics.mean(others) if estimator == "rloo" else statistics.mean(group)
            centred.append(r - baseline)
    if scale == "none":
        return centred
    source = centred if estimator == "reinforce_plus_plus" else rewards
    if scale == "batch":
        return [a / (statistics.stdev(source) + 1e-4) for a in centred]
    out = []
    for g in range(len(groups)):
        std = statistics.stdev(source[g * n : (g + 1) * n])
        out += [a / (std + 1e-4) for a in centred[g * n : (g + 1) * n]]
    return out


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
@pytest.mark.parametrize("estimator", ["grpo", "rloo", "reinforce_plus_plus"])
def test_each_estimator_matches_its_formula(estimator, scale):
    got = advantages(torch.tensor(REWARDS), N, estimator, scale)
    assert got.tolist() == pytest.approx(by_hand(REWARDS, N, estimator, scale), rel=1e-5, abs=1e-6)


def test_the_estimators_differ_as_the_papers_say():
    r = torch.tensor(REWARDS)
    grpo = advantages(r, N, "grpo", "none")
    rloo = advantages(r, N, "rloo", "none")
    # leave-one-out = the group-mean advantage scaled by n / (n - 1)
    assert rloo.tolist() == pytest.approx((grpo * N / (N - 1)).tolist())
    assert rloo[0].item() == pytest.approx(1.0 - 1 / 3)  # 1 - mean(0, 0, 1)
    rpp = advantages(r, N, "reinforce_plus_plus", "batch")
    assert statistics.stdev(rpp.tolist()) == pytest.approx(1.0, abs=1e-3)  # whitened over the batch


def test_an_unscorable_answer_stays_out_of_the_baseline():
    r = torch.tensor([1.0, float("nan"), 0.0, 0.0])
    rloo = advantages(r, 4, "rloo", "none")
    assert rloo[1].item() == 0.0
    assert rloo[0].item() == pytest.approx(1.0)  # 1 - mean(0, 0): the NaN answer is not one of the others
    grpo = advantages(r, 4, "grpo", "group")
    assert grpo[0].item() == pytest.approx((1 - 1 / 3) / (statistics.stdev([1.0, 0.0, 0.0]) + 1e-4), rel=1e-5)
    alone = advantages(torch.tensor([2.0, float("nan")]), 2, "rloo", "none")  # no other scored answer
    assert alone.tolist() == [0.0, 0.0]


def test_equal_rewards_give_zero_advantages_for_every_estimator():
    for estimator in ("grpo", "rloo", "reinforce_plus_plus"):
        for scale in ("group", "batch", "none"):
            assert advantages(torch.full((4,), 0.5), 2, estimator, scale).abs().max().item() == 0.0


@pytest.mark.parametrize(
    "estimator, scale, kl",
    [("grpo", "group", False), ("rloo", "none", True), ("reinforce_plus_plus", "batch", True)],
)
def test_defaults_follow_the_estimator(compose, tmp_path, estimator, scale, kl):
    from rlhf_lab.config.run import build_run

    run = build_run(compose(["algorithm=grpo", f"algorithm.advantage_estimator={estimator}"]), tmp_path)
    assert (run.algorithm.scale_rewards, run.algorithm.kl_in_reward) == (scale, kl)
    # recorded as resolved (summary.json, trackers, the run's fingerprint)
    assert (run.resolved["algorithm"]["scale_rewards"], run.resolved["algorithm"]["kl_in_reward"]) == (scale, kl)
    run = build_run(
        compose(["algorithm=grpo", f"algorithm.advantage_estimator={estimator}", "algorithm.beta=0"]), tmp_path
    )
    assert run.algorithm.kl_in_reward is False  # no KL penalty to move
    run = build_run(
        compose(["algorithm=grpo", f"algorithm.advantage_estimator={estimator}", "algorithm.scale_rewards=group"]),
        tmp_path,
    )
    assert run.algorithm.scale_rewards == "group"  # an explicit setting wins


@pytest.mark.parametrize(
    "override, needle",
    [
        ("algorithm.advantage_estimator=reinforce", "advantage_estimator"),
        ("algorithm.kl_in_reward=true", "beta=0"),
    ],
)
def test_bad_estimator_settings_are_one_line(tmp_path, override, needle):
    proc = run_cli(["algorithm=grpo", "algorithm.beta=0", override, "--cfg", "job"], cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr


def _round(compose, tmp_path, overrides):
    trainer = build_trainer(
        compose,
        tmp_path,
        [*GRPO_TINY, "algorithm.reward_funcs=[helpers.custom_rewards.length_in_chars]", *overrides],
    )
    trainer.model.train()
    torch.manual_seed(0)
    batch = trainer._generate_and_score_completions(next(iter(trainer.get_train_dataloader())))
    texts = trainer.processing_class.batch_decode(batch["completion_ids"] * batch["completion_mask"])
    return trainer, batch, texts


@pytest.mark.parametrize("estimator", ["rloo", "reinforce_plus_plus"])
def test_a_training_batch_carries_the_estimators_advantages(compose, tmp_path, tiny_model_dir, estimator):
    trainer, batch, _ = _round(compose, tmp_path, [f"algorithm.advantage_estimator={estimator}", "algorithm.beta=0"])
    rewards = trainer._last_gathered_rewards.tolist()
    assert len(set(rewards)) > 1  # the answers' lengths differ: a real test of the formula
    scale = {"rloo": "none", "reinforce_plus_plus": "batch"}[estimator]
    assert batch["advantages"].tolist() == pytest.approx(by_hand(rewards, 2, estimator, scale), rel=1e-4, abs=1e-5)


def test_kl_in_reward_lowers_each_reward_by_beta_times_its_kl(compose, tmp_path, tiny_model_dir, monkeypatch):
    from trl import GRPOTrainer

    beta = 0.5
    trainer = build_trainer(
        compose,
        tmp_path,
        [
            *GRPO_TINY,
            "algorithm.reward_funcs=[helpers.custom_rewards.length_in_chars]",
            "algorithm.advantage_estimator=rloo",
            f"algorithm.beta={beta}",
        ],
    )
    move_off_reference(trainer.model)  # a policy that differs from the reference: the KL is not 0
    trainer.model.train()
    torch.manual_seed(0)
    batch = trainer._generate_and_score_completions(next(iter(trainer.get_train_dataloader())))
    # the KL by hand: the policy's and the reference's log-probs of each answer's tokens, summed
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    trainer.model.eval()  # no dropout: the policy as it sampled
    with torch.no_grad():
        logits = trainer.model(input_ids=ids, attention_mask=mask).logits[:, -batch["completion_ids"].size(1) - 1 : -1]
        logits = logits.float() / 0.9  # log-probs of the sampling distribution (temperature 0.9), as TRL takes them
        policy = torch.log_softmax(logits, -1).gather(-1, batch["completion_ids"].unsqueeze(-1)).squeeze(-1)
    kl = ((policy - batch["ref_per_token_logps"]) * batch["completion_mask"]).sum(1)
    assert kl.abs().max().item() > 1e-3
    shaped = [r - beta * k for r, k in zip(trainer._last_gathered_rewards.tolist(), kl.tolist())]
    assert batch["advantages"].tolist() == pytest.approx(by_hand(shaped, 2, "rloo", "none"), rel=1e-3, abs=1e-3)
    logged = trainer._metrics["train"]["kl_in_reward"]
    assert logged and math.isclose(logged[-1], kl.mean().item(), rel_tol=1e-3, abs_tol=1e-4)
    # the loss carries no KL term of its own (it is in the rewards): beta is 0 while the loss is computed
    seen = []
    original = GRPOTrainer._compute_loss

    def spy(self, model, inputs):
        seen.append(self.beta)
        return original(self, model, inputs)

    monkeypatch.setattr(GRPOTrainer, "_compute_loss", spy)
    trainer._compute_loss(trainer.model, batch)
    assert seen == [0.0] and trainer.beta == beta


def test_rloo_trains_end_to_end(tmp_path, tiny_model_dir):
    proc = run_cli(
        [
            *GRPO_TINY,
            "algorithm.reward_funcs=[helpers.custom_rewards.length_in_chars]",
            "algorithm.advantage_estimator=rloo",
            "train.max_steps=2",
            f"hydra.run.dir={tmp_path}/run",
        ],
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT / "tests")},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "kl_in_reward" in logged_metrics(tmp_path / "run")
