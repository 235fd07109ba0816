"""PPO options. Names and defaults follow ms-swift's `swift rlhf --rlhf_type ppo`."""

from __future__ import annotations

from dataclasses import dataclass

from rlhf_lab.config.algorithm import revision_field, trust_field
from rlhf_lab.config.checks import in_range, one_of, positive
from rlhf_lab.config.fields import doc
from rlhf_lab.config.rewards import RewardOptions
from rlhf_lab.errors import ConfigError


@dataclass
class PPOConfig(RewardOptions):
    """Proximal Policy Optimization with a learned critic: the policy samples answers, a reward model (and/or
    reward functions) scores them, a per-token KL penalty keeps it near the reference, and GAE advantages from
    the value model drive clipped policy and value updates."""

    num_ppo_epochs: int = doc(4, "Optimisation passes over each rollout.")
    num_mini_batches: int = doc(
        1, "Optimizer steps per rollout, each of per_device_train_batch_size x gradient_accumulation_steps answers."
    )
    kl_coef: float = doc(0.05, "Weight of the per-token KL penalty to the reference, folded into the rewards.")
    # Both are unbiased; k1 can be negative per token, k3 never is and has lower variance.
    kl_estimator: str = doc(
        "k1", "Per-token KL estimate: k1 = log p - log p_ref; k3 = (r - 1) - log r with r = p_ref / p."
    )
    cliprange: float = doc(0.2, "Clip range of the policy ratio.")
    cliprange_value: float = doc(0.2, "Clip range of the value prediction around the rollout's values.")
    vf_coef: float = doc(0.1, "Weight of the value loss in the total loss.")
    gamma: float = doc(1.0, "Discount factor of GAE.")
    lam: float = doc(0.95, "Lambda of GAE.")
    whiten_rewards: bool = doc(False, "Whiten the per-token rewards (scale only) before GAE.")
    missing_eos_penalty: float | None = doc(
        None, "Subtracted from the score of answers cut at max_completion_length without an end token; null = 0."
    )
    temperature: float = doc(0.9, "Sampling temperature of the generated answers.")
    local_rollout_forward_batch_size: int = doc(64, "Answers generated and scored per forward pass during the rollout.")
    # A sequence classifier sharing the policy's tokenizer.
    value_model: str | None = doc(
        None, "The critic's starting checkpoint; null = the reward model, else the policy's checkpoint with a new head."
    )
    value_model_revision: str | None = revision_field("the value model")
    value_model_trust_remote_code: bool = trust_field("the value model")
    ref_model: str | None = doc(
        None, "A separate reference model; null = the base model (LoRA: adapters disabled, no second copy)."
    )
    ref_model_revision: str | None = revision_field("the reference model")
    ref_model_trust_remote_code: bool = trust_field("the reference model")

    extra_models = ("reward_model", "value_model", "ref_model")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.disable_dropout:
            raise ConfigError(
                "disable_dropout",
                "must stay true for PPO: its ratios and values compare passes over the same tokens, which dropout "
                "would perturb (TRL's PPO runs without dropout too)",
            )
        positive("num_ppo_epochs", self.num_ppo_epochs)
        positive("num_mini_batches", self.num_mini_batches)
        positive("kl_coef", self.kl_coef, allow_zero=True)
        one_of("kl_estimator", self.kl_estimator, ("k1", "k3"))
        positive("cliprange", self.cliprange)
        positive("cliprange_value", self.cliprange_value)
        positive("vf_coef", self.vf_coef, allow_zero=True)
        in_range("gamma", self.gamma, 0.0, 1.0)
        in_range("lam", self.lam, 0.0, 1.0)
        if self.missing_eos_penalty is not None:
            positive("missing_eos_penalty", self.missing_eos_penalty, allow_zero=True)
        positive("temperature", self.temperature)
        positive("local_rollout_forward_batch_size", self.local_rollout_forward_batch_size)

    def plan_facts(self, tuner: str, backend: str = "single", cpu_bf16: bool = False):
        from rlhf_lab.planning.facts import PlanFacts

        frozen = {"reference": self.ref_model} if tuner == "full" or self.ref_model else {}
        # With LoRA and no value_model the critic is the reward model plus adapters: one copy of its weights.
        if self.reward_model and not (tuner == "lora" and self.value_model is None):
            frozen["reward_model"] = self.reward_model
        trained = {"value_model": self.value_model or self.reward_model}
        return PlanFacts(frozen=frozen, trained=trained, generated_tokens=self.max_completion_length)

    def model_paths(self) -> dict[str, str]:
        paths = super().model_paths()
        for key in ("value_model", "ref_model"):
            if getattr(self, key):
                paths[key] = getattr(self, key)
        return paths
