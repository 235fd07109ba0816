"""The four models of PPO: the policy (and its reference), the critic, and the reward that scores answers."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from contextlib import nullcontext

import torch
from torch import nn

from rlhf_lab.rewards.remote import stop_if_down
from rlhf_lab.rewards.total import weighted_total


def unwrap_peft(model):
    """The transformers model under a peft wrapper (LoRA layers stay injected), or the model itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def token_values(value_model, input_ids, attention_mask, position_ids) -> torch.Tensor:
    """The critic's scalar head at every position: [batch, seq]. Sequence classifiers only return the pooled
    score, so the backbone and the head are called directly."""
    hf = unwrap_peft(value_model)
    backbone = getattr(hf, hf.base_model_prefix)
    hidden = backbone(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
    ).last_hidden_state
    return hf.score(hidden).squeeze(-1).float()


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding, as generate() numbers them."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


def disable_dropout(model: nn.Module) -> None:
    """PPO compares log-probs of the same tokens across passes; dropout (LoRA's included) would make the ratio
    noise instead of 1 before the first update."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0


class PolicyAndValue(nn.Module):
    """Policy and critic as one module: one optimizer, one distributed wrapper, one forward for the update."""

    def __init__(self, policy, value_model):
        super().__init__()
        self.policy = policy
        self.value_model = value_model
        self.config = policy.config  # the Trainer reads model.config

    def forward(self, input_ids, attention_mask, position_ids, logits_to_keep: int):
        logits = self.policy(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            logits_to_keep=logits_to_keep,
            use_cache=False,
        ).logits
        return logits, token_values(self.value_model, input_ids, attention_mask, position_ids)


def reference_context(policy, ref_model) -> Callable[[], ContextManager]:
    """How to run the reference: the policy with its LoRA adapters disabled, or a separate frozen model."""
    if ref_model is None:
        return policy.disable_adapter
    return nullcontext


class RewardScorer:
    """The total reward of answers: reward functions and/or a reward model, weighted like GRPO's.

    The reward model reads (prompt, answer) rendered with its own chat template and tokenizer, exactly as
    algorithm=rm trained it, and scores it at the last real token."""

    def __init__(
        self,
        funcs: list,
        weights: list[float] | None,
        reward_model=None,
        reward_tokenizer=None,
        model_context: Callable[[], ContextManager] = nullcontext,
        *,
        batch_size: int,
        autocast: Callable[[], ContextManager] = nullcontext,
    ):
        self.funcs = funcs
        self.reward_model = reward_model
        self.reward_tokenizer = reward_tokenizer
        # With LoRA the reward model is the critic with its adapters (and new head) switched off.
        self.model_context = model_context
        self.batch_size = batch_size
        self.autocast = autocast
        self.names = [f.__name__ for f in funcs] + (["reward_model"] if reward_model is not None else [])
        self.weights = torch.tensor(weights if weights is not None else [1.0] * len(self.names))

    @torch.no_grad()
    def __call__(self, rows: list[dict], texts: list[str], completion_ids: list[list[int]]):
        """(total reward per answer [n], {reward name: per-answer values [n]}); a reward's None counts as 0."""
        prompts = [row["prompt"] for row in rows]
        columns = {k: [row[k] for row in rows] for k in rows[0] if k != "prompt"}
        completions = [[{"role": "assistant", "content": t}] for t in texts]
        per = []
        for func in self.funcs:
            values = func(prompts=prompts, completions=completions, completion_ids=completion_ids, **columns)
            per.append(torch.tensor([float("nan") if v is None else v for v in values]))
        stop_if_down(self.funcs)  # a reward service that stayed down: stop before its missing rewards are used
        if self.reward_model is not None:
            per.append(self.model_scores(prompts, texts))
        table = torch.stack(per, dim=1)
        total = weighted_total(table, self.weights)
        return total, {name: table[:, i] for i, name in enumerate(self.names)}

    def model_scores(self, prompts: list[list[dict]], texts: list[str]) -> torch.Tensor:
        tok = self.reward_tokenizer
        rendered = [
            tok.apply_chat_template([*p, {"role": "assistant", "content": t}], tokenize=False)
            for p, t in zip(prompts, texts)
        ]
        device = next(self.reward_model.parameters()).device
        scores = []
        was_training = self.reward_model.training
        self.reward_model.eval()
        for start in range(0, len(rendered), self.batch_size):
            enc = tok(
                rendered[start : start + self.batch_size],
                return_tensors="pt",
                padding=True,
                padding_side="right",
                add_special_tokens=False,
            ).to(device)
            with self.model_context(), self.autocast():
                scores.append(self.reward_model(**enc).logits[:, 0].float().cpu())
        self.reward_model.train(was_training)
        return torch.cat(scores)
