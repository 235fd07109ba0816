"""PPO on the tiny model: the rollout lines up with the update, the reward model is shared with the critic
without drifting, gradient accumulation, end-to-end runs whose saved policy and critic reload, config errors."""

import json
import math

import pytest
import torch
from conftest import TINY, build_trainer, logged_metrics, read_summary, run_cli

PPO_TINY = [*TINY, "algorithm=ppo", "dataset=arith_math", "algorithm.max_completion_length=8"]


@pytest.fixture(scope="session")
def tiny_reward_model(tiny_model_dir, tmp_path_factory):
    """A tiny one-score sequence classifier on the tiny model's tokenizer (untrained head)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path_factory.mktemp("tiny_rm")
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _rows(trainer, n):
    return trainer.train_rows[:n]


def test_rollout_log_probs_and_values_line_up_with_the_update_and_a_plain_forward(compose, tmp_path, tiny_reward_model):
    from rlhf_lab.algorithms.ppo.models import token_values

    trainer = build_trainer(compose, tmp_path, [*PPO_TINY, f"algorithm.reward_model={tiny_reward_model}"])
    trainer.model_wrapped = trainer.model
    torch.manual_seed(0)
    rows = _rows(trainer, 4)
    rollout, stats = trainer.rollout(rows)
    width, prompt_length = rollout.response_length, rollout.input_ids.size(1) - rollout.response_length
    # Prompts of different lengths: some rows are left-padded.
    assert (rollout.attention_mask[:, :prompt_length] == 0).any()
    trainer.model.eval()
    with torch.no_grad():
        logits, values = trainer.model(rollout.input_ids, rollout.attention_mask, rollout.position_ids, width + 1)
    # The update's first forward sees exactly the rollout's log-probs and values: the first ratio is 1.
    new = torch.log_softmax(logits[:, :-1] / trainer.cfg.temperature, -1).gather(-1, rollout.responses.unsqueeze(-1))
    m = rollout.mask.bool()
    assert torch.allclose(new.squeeze(-1)[m], rollout.logprobs[m], atol=1e-4)
    assert torch.allclose(values[:, prompt_length - 1 : -1][m], rollout.values[m], atol=1e-4)
    # And a plain unpadded forward of one padded row gives the same log-probs (positions skip the padding).
    row = int((rollout.attention_mask[:, :prompt_length] == 0).any(1).nonzero()[0])
    keep = rollout.attention_mask[row].bool()
    ids = rollout.input_ids[row][keep].unsqueeze(0)
    n_prompt = int(rollout.attention_mask[row, :prompt_length].sum())
    with torch.no_grad():
        plain = trainer.model.policy(input_ids=ids).logits[0, n_prompt - 1 : -1] / trainer.cfg.temperature
        plain_values = token_values(trainer.model.value_model, ids, None, None)[0, n_prompt - 1 : -1]
    answer = ids[0, n_prompt:]
    plain_logprobs = torch.log_softmax(plain, -1).gather(-1, answer.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(plain_logprobs, rollout.logprobs[row][m[row]], atol=1e-4)
    assert torch.allclose(plain_values, rollout.values[row][m[row]], atol=1e-4)
    # LoRA starts as the identity: policy == reference, so the KL penalty is 0 and the return is the score.
    assert stats["kl"] == pytest.approx(0.0, abs=1e-5)
    assert math.isfinite(stats["score"])


def test_lora_critic_shares_the_reward_model_weights_and_the_reward_does_not_drift(
    compose, tmp_path, tiny_reward_model
):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rlhf_lab.algorithms.ppo.models import RewardScorer

    trainer = build_trainer(
        compose, tmp_path, [*PPO_TINY, f"algorithm.reward_model={tiny_reward_model}", "train.learning_rate=0.05"]
    )
    assert trainer.scorer.reward_model is trainer.model.value_model  # one copy of the reward model's weights
    trainer.train()
    lora_b = [p for n, p in trainer.model.value_model.named_parameters() if "lora_B" in n]
    assert any(p.abs().sum() > 0 for p in lora_b)  # the critic did train

    rows = _rows(trainer, 3)
    prompts = [r["prompt"] for r in rows]
    texts = ["4", "The answer is 12.", "I do not know"]
    fresh = AutoModelForSequenceClassification.from_pretrained(tiny_reward_model)
    reference = RewardScorer(
        [], None, reward_model=fresh, reward_tokenizer=AutoTokenizer.from_pretrained(tiny_reward_model), batch_size=64
    )
    expected = reference.model_scores(prompts, texts)
    assert torch.allclose(trainer.scorer.model_scores(prompts, texts), expected, atol=1e-5)
    with torch.no_grad():  # while the critic itself now says something else
        enc = reference.reward_tokenizer(
            [
                reference.reward_tokenizer.apply_chat_template(
                    [*p, {"role": "assistant", "content": t}], tokenize=False
                )
                for p, t in zip(prompts, texts)
            ],
            return_tensors="pt",
            padding=True,
            padding_side="right",
            add_special_tokens=False,
        )
        assert not torch.allclose(trainer.model.value_model(**enc).logits[:, 0], expected, atol=1e-3)


def test_ppo_end_to_end_with_accumulation_saves_a_policy_and_critic_that_reload(
    tmp_path, tiny_reward_model, tiny_model_dir
):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    proc = run_cli(
        [
            *PPO_TINY,
            f"algorithm.reward_model={tiny_reward_model}",
            "train.per_device_train_batch_size=1",
            "train.gradient_accumulation_steps=2",
            "algorithm.num_mini_batches=2",
            "algorithm.num_ppo_epochs=2",
            "algorithm.kl_estimator=k3",
            "algorithm.missing_eos_penalty=1.0",
            "algorithm.whiten_rewards=true",
            "dataset.val_path=null",
            "dataset.split_ratio=0.25",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "runs").iterdir()
    summary = read_summary(run_dir)
    assert summary["status"] == "completed"
    assert summary["global_steps"] == 2
    # 4 prompts a rollout (1 x 2 accumulation x 2 mini-batches); 2 epochs x 2 mini-batches = 4 steps an update.
    assert summary["ppo"]["rollout_prompts_per_process"] == 4
    assert summary["ppo"]["optimizer_steps"] == 8
    assert math.isfinite(summary["train_loss"])
    metrics = logged_metrics(run_dir)
    for name in (
        "score",
        "kl",
        "entropy",
        "policy/clip_fraction",
        "policy/approx_kl",
        "loss/policy",
        "loss/value",
        "value/clip_fraction",
        "return_mean",
        "advantage_mean",
        "reward/reward_model",
        "eos_fraction",
    ):
        assert name in metrics, name
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss"]) for r in records if "loss" in r)
    # The random tiny model never says end-of-sequence within 8 tokens, so every score carries the penalty.
    assert all(r["eos_fraction"] == 0 for r in records if "eos_fraction" in r)
    assert set(summary["eval_after"]) >= {"score", "reward/reward_model", "accuracy", "completion_length"}

    adapter = run_dir / "adapter"
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = torch.tensor([[1, 5, 9, 13]])
    with torch.no_grad():
        before = base(input_ids=ids).logits
        after = PeftModel.from_pretrained(base, adapter).eval()(input_ids=ids).logits
    assert not torch.allclose(before, after, atol=1e-6)  # the policy moved and its adapter reloads
    critic = PeftModel.from_pretrained(
        AutoModelForSequenceClassification.from_pretrained(tiny_reward_model), adapter / "value_model"
    )
    assert critic(input_ids=ids).logits.shape == (1, 1)


def test_ppo_full_tuning_with_reward_functions_only(tmp_path, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    proc = run_cli(
        [*PPO_TINY, "tuner=full", "algorithm.reward_funcs=[accuracy]", "train.max_steps=1", "train.eval=false"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs" / "runs").iterdir()
    summary = read_summary(run_dir)
    assert summary["global_steps"] == 1 and "reward/accuracy" in summary["final_train_metrics"]
    model = AutoModelForCausalLM.from_pretrained(run_dir / "model")
    critic = AutoModelForSequenceClassification.from_pretrained(run_dir / "model" / "value_model")
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    moved = any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), base.state_dict().values()))
    assert moved and critic.config.num_labels == 1


@pytest.mark.parametrize(
    "args,expected",
    [
        (["algorithm=ppo"], "config error: algorithm.reward_funcs: PPO needs at least one reward"),
        (["algorithm=ppo", "algorithm.reward_model=/nonexistent/rm"], "/nonexistent/rm"),
        (["algorithm=ppo", "algorithm.reward_funcs=[accuracy]", "algorithm.kl_estimator=k2"], "algorithm.kl_estimator"),
        (
            ["algorithm=ppo", "algorithm.reward_funcs=[accuracy]", "algorithm.lam=1.5"],
            "algorithm.lam: must be in [0.0, 1.0]",
        ),
    ],
)
def test_ppo_config_errors_are_one_line(tmp_path, args, expected):
    proc = run_cli(args, tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], proc.stderr


def test_ppo_defaults_follow_ms_swift(compose, tmp_path):
    from rlhf_lab.config.run import build_run

    a = build_run(compose(["algorithm=ppo", "algorithm.reward_funcs=[accuracy]"]), tmp_path).algorithm
    assert (a.num_ppo_epochs, a.kl_coef, a.cliprange, a.vf_coef, a.cliprange_value, a.gamma, a.lam) == (
        4,
        0.05,
        0.2,
        0.1,
        0.2,
        1.0,
        0.95,
    )
    assert (a.whiten_rewards, a.max_completion_length, a.num_mini_batches, a.missing_eos_penalty) == (
        False,
        512,
        1,
        None,
    )
    assert a.kl_estimator == "k1" and a.value_model is None and a.reward_model is None
