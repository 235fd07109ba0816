"""PPO's formulas against values worked out by hand on small tensors."""

import math

import pytest
import torch

from rlhf_lab.algorithms.ppo import formulas as pm
from rlhf_lab.algorithms.ppo.trainer import PromptStream, truncate_after_stop

T = torch.tensor


def close(a, b, tol=1e-5):
    return torch.allclose(torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32), atol=tol)


def test_gae_by_hand():
    # gamma 0.9, lam 0.8 (gamma*lam 0.72); the 4th position is padding and must not leak in.
    rewards = T([[0.0, 0.0, 1.0, 5.0]])
    values = T([[0.5, 0.6, 0.7, 9.0]])
    mask = T([[1.0, 1.0, 1.0, 0.0]])
    adv, ret = pm.gae(rewards, values, mask, gamma=0.9, lam=0.8)
    # delta2 = 1 + 0 - 0.7 = 0.3          A2 = 0.3
    # delta1 = 0.9*0.7 - 0.6 = 0.03       A1 = 0.03 + 0.72*0.3 = 0.246
    # delta0 = 0.9*0.6 - 0.5 = 0.04       A0 = 0.04 + 0.72*0.246 = 0.21712
    assert close(adv, [[0.21712, 0.246, 0.3, 0.0]])
    assert close(ret, [[0.71712, 0.846, 1.0, 0.0]])


def test_gae_with_gamma_and_lambda_one_is_reward_to_go_minus_value():
    rewards = T([[0.1, -0.2, 0.3, 2.0], [0.5, 1.0, 0.0, 0.0]])
    values = T([[0.3, 0.1, -0.4, 0.2], [1.0, -1.0, 3.0, 3.0]])
    mask = T([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]])
    adv, ret = pm.gae(rewards, values, mask, gamma=1.0, lam=1.0)
    to_go = T([[2.2, 2.1, 2.3, 2.0], [1.5, 1.0, 0.0, 0.0]])
    assert close(ret, to_go)
    assert close(adv, (to_go - values) * mask)


def test_whitening_by_hand():
    x = T([[2.0, 4.0, 6.0, 100.0]])
    mask = T([[1.0, 1.0, 1.0, 0.0]])
    # mean 4, unbiased variance (4 + 0 + 4) / 2 = 4, std 2
    assert close(pm.masked_whiten(x, mask), [[-1.0, 0.0, 1.0, 0.0]])
    assert close(pm.masked_whiten(x, mask, shift_mean=False), [[3.0, 4.0, 5.0, 0.0]])
    assert pm.masked_var(x, mask).item() == pytest.approx(4.0)
    assert pm.masked_var(x[:, :3], mask[:, :3]).item() == pytest.approx(torch.var(x[:, :3]).item())


def test_kl_estimators_by_hand():
    logp, ref = T([-1.0, -2.0]), T([-1.5, -1.0])
    assert close(pm.kl_penalty(logp, ref, "k1"), [0.5, -1.0])
    # r = p_ref / p = exp(-0.5), exp(1); k3 = (r - 1) - log r
    k3 = [math.exp(-0.5) - 1 + 0.5, math.e - 1 - 1]
    assert close(pm.kl_penalty(logp, ref, "k3"), k3)
    assert close(k3, [0.1065307, 0.7182818])
    with pytest.raises(ValueError):
        pm.kl_penalty(logp, ref, "k2")


def test_token_rewards_put_the_score_on_the_last_real_token():
    kl = T([[0.1, 0.2, 0.3, 0.0], [0.4, 0.0, 0.0, 0.0]])
    mask = T([[1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    rewards = pm.token_rewards(T([2.0, -1.0]), kl, mask, kl_coef=0.5)
    assert close(rewards, [[-0.05, -0.1, -0.15 + 2.0, 0.0], [-0.2 - 1.0, 0.0, 0.0, 0.0]])


def test_clipped_policy_loss_by_hand():
    # ratios 1.5, 0.5, 1.1 (and a padded token with an absurd ratio that must not count)
    old = T([[0.0, 0.0, 0.0, 0.0]])
    new = T([[math.log(1.5), math.log(0.5), math.log(1.1), 5.0]])
    adv = T([[1.0, 1.0, -1.0, 100.0]])
    mask = T([[1.0, 1.0, 1.0, 0.0]])
    loss, stats = pm.clipped_policy_loss(new, old, adv, mask, cliprange=0.2)
    # token 0: max(-1.5, -1.2) = -1.2 (clipped); token 1: max(-0.5, -0.8) = -0.5; token 2: max(1.1, 1.1) = 1.1
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 1.1) / 3, abs=1e-6)
    assert stats["clip_fraction"].item() == pytest.approx(1 / 3)
    logs = [math.log(1.5), math.log(0.5), math.log(1.1)]
    assert stats["approx_kl"].item() == pytest.approx(0.5 * sum(v * v for v in logs) / 3, abs=1e-6)
    assert stats["ratio"].item() == pytest.approx((1.5 + 0.5 + 1.1) / 3, abs=1e-6)


def test_clipped_value_loss_by_hand():
    old, new, returns = T([[0.0, 1.0, 0.0]]), T([[0.5, 1.1, 7.0]]), T([[1.0, 0.0, 0.0]])
    mask = T([[1.0, 1.0, 0.0]])
    loss, stats = pm.clipped_value_loss(new, old, returns, mask, cliprange_value=0.2)
    # token 0: clipped prediction 0.2: max((0.5-1)^2, (0.2-1)^2) = 0.64 (clipped)
    # token 1: clipped prediction 1.1 (inside the range): 1.21
    assert loss.item() == pytest.approx(0.5 * (0.64 + 1.21) / 2, abs=1e-6)
    assert stats["clip_fraction"].item() == pytest.approx(0.5)


def test_log_probs_and_entropy():
    torch.manual_seed(0)
    logits, tokens = torch.randn(2, 3, 7), torch.randint(0, 7, (2, 3))
    expected = torch.log_softmax(logits, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    assert close(pm.token_logprobs(logits, tokens), expected)
    assert close(pm.entropy(torch.zeros(1, 4)), [math.log(4)])
    p = torch.softmax(logits, -1)
    assert close(pm.entropy(logits), -(p * p.log()).sum(-1))


def test_answers_are_cut_after_the_first_stop_token():
    responses = T([[5, 2, 7, 8], [5, 6, 7, 8], [2, 2, 2, 2]])
    cut, mask, has_stop = truncate_after_stop(responses, stop_ids=[2], pad_id=0)
    assert cut.tolist() == [[5, 2, 0, 0], [5, 6, 7, 8], [2, 0, 0, 0]]
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert has_stop.tolist() == [True, False, True]


def test_prompt_stream_covers_every_row_once_per_pass_and_splits_processes():
    rows = [{"i": i} for i in range(10)]
    stream = PromptStream(rows, batch=5, seed=0)
    seen = [r["i"] for _ in range(2) for r in stream.next_batch()]
    assert sorted(seen) == list(range(10))
    ranks = [PromptStream(rows, batch=5, seed=0, rank=r, world=2).next_batch() for r in (0, 1)]
    assert sorted(r["i"] for batch in ranks for r in batch) == list(range(10))
