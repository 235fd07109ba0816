"""Options of GRPO and its DAPO, SAPO and CISPO recipes. Names and defaults follow ms-swift's
`swift rlhf --rlhf_type grpo`."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from rlhf_lab.config.checks import in_range, one_of, positive
from rlhf_lab.config.distributed import WHOLE_MODEL_BACKENDS
from rlhf_lab.config.fields import doc, doc_factory
from rlhf_lab.config.rewards import RewardOptions
from rlhf_lab.errors import ConfigError

# Every policy loss TRL 1.16's GRPOTrainer implements.
GRPO_LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo")
# Advantage estimators (formulas: algorithms/grpo/advantages.py) and ms-swift's defaults for each: how rewards are
# scaled, and whether the KL penalty moves into the reward.
ESTIMATORS = ("grpo", "rloo", "reinforce_plus_plus")
DEFAULT_SCALE = {"grpo": "group", "rloo": "none", "reinforce_plus_plus": "batch"}
DEFAULT_KL_IN_REWARD = {"grpo": False, "rloo": True, "reinforce_plus_plus": True}
# Losses normalised per token over the batch: a sequence-level importance weight is meaningless for them.
_TOKEN_LEVEL_LOSSES = ("bnpo", "dr_grpo", "dapo", "cispo")


def _vllm_check(use_vllm: bool, mode: str) -> None:
    one_of("vllm_mode", mode, ("colocate", "server"))
    if use_vllm and importlib.util.find_spec("vllm") is None:
        raise ConfigError(
            "use_vllm",
            "vllm is not installed (it needs CUDA GPUs); `pip install vllm` on a GPU machine, or set "
            "algorithm.use_vllm=false to generate with transformers",
        )


@dataclass
class GRPOConfig(RewardOptions):
    """Group Relative Policy Optimization: sample num_generations answers per prompt, score them with the reward
    functions, and push up the answers that beat their group's mean."""

    # GRPO trains with dropout unless asked (TRL's default); answers are always sampled without it.
    disable_dropout: bool = False
    num_generations: int = doc(8, "Answers sampled per prompt (the group); the global batch must be a multiple of it.")
    temperature: float = doc(0.9, "Sampling temperature of the generated answers.")
    top_p: float = doc(1.0, "Nucleus sampling: sample from the most likely tokens holding this probability (1 = all).")
    top_k: int = doc(0, "Sample from the k most likely tokens only; 0 = no top-k truncation.")
    repetition_penalty: float = doc(1.0, "Penalty on tokens already in the prompt or answer when sampling (1 = none).")
    beta: float = doc(0.04, "Weight of the KL penalty to the reference model; 0 drops the reference model entirely.")
    epsilon: float = doc(0.2, "Lower (and, without epsilon_high, upper) clip range of the importance ratio.")
    epsilon_high: float | None = doc(None, "Upper clip range (DAPO's clip-higher, CISPO's cap); null = epsilon.")
    loss_type: str = doc("grpo", f"Policy loss: {', '.join(GRPO_LOSS_TYPES)}.")
    advantage_estimator: str = doc(
        "grpo", f"How advantages are computed: {', '.join(ESTIMATORS)} (formulas: algorithms/grpo/advantages.py)."
    )
    scale_rewards: str | None = doc(
        None,
        "Divide advantages by the group's std, the batch's or not: group, batch, none; null = the estimator's default.",
    )
    kl_in_reward: bool | None = doc(
        None,
        "Subtract beta x each answer's KL from its reward, not in the loss; null = true for rloo, reinforce_plus_plus.",
    )
    num_iterations: int = doc(1, "Policy updates per generated batch (> 1 reuses samples with importance ratios).")
    importance_sampling_level: str = doc(
        "token", "token: per-token ratios (GRPO); sequence: one length-normalised ratio per answer (GSPO)."
    )
    sapo_temperature_pos: float = doc(1.0, "SAPO's soft-gate temperature for positive advantages.")
    sapo_temperature_neg: float = doc(1.05, "SAPO's soft-gate temperature for negative advantages.")
    overlong_filter: bool = doc(False, "Leave answers cut at max_completion_length out of the loss (DAPO).")
    # Groups whose rewards are all equal carry no signal.
    dynamic_sample: bool = doc(
        False, "DAPO's dynamic sampling: drop groups with all-equal rewards and refill the batch from further prompts."
    )
    max_resample_times: int = doc(3, "Most extra generation rounds per batch that dynamic_sample may run.")
    tools: list[Any] = doc_factory(
        list, "Functions the model may call while answering: dotted paths or {_target_} objects (see README, Tools)."
    )
    environment: Any | None = doc(
        None, "An environment class (dotted path or {_target_}): its methods are tools, reset(**row) starts an answer."
    )
    max_turns: int | None = doc(
        None, "With tools: most model turns per answer (tools run at most max_turns - 1 times); null = no limit."
    )
    use_vllm: bool = doc(False, "Generate with vLLM (CUDA GPUs) instead of transformers.")
    vllm_mode: str = doc("colocate", "colocate: vLLM shares the training GPUs; server: talk to `trl vllm-serve`.")
    vllm_server_host: str = doc("127.0.0.1", "Host of the vLLM server (vllm_mode=server).")
    vllm_server_port: int = doc(8000, "Port of the vLLM server (vllm_mode=server).")
    vllm_gpu_memory_utilization: float = doc(0.9, "Fraction of GPU memory vLLM may take (vllm_mode=colocate).")
    # No adapter branches and half the bytes per generated token (about 2x faster generation on a CPU with fast bf16),
    # for half the base weights' memory. auto: on a CPU with bf16 on, LoRA, text rows, one process or ddp, no vLLM;
    # on: wherever possible (else a config error).
    generation_copy: str = doc(
        "auto", "Sample from a bf16 copy of the policy with LoRA merged in, refreshed each update: auto, on or off."
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        one_of("generation_copy", self.generation_copy, ("auto", "on", "off"))
        positive("num_generations", self.num_generations)
        if self.num_generations < 2:
            raise ConfigError("num_generations", "must be >= 2: advantages compare the answers of one prompt")
        positive("temperature", self.temperature)
        in_range("top_p", self.top_p, 0.0, 1.0)
        positive("top_k", self.top_k, allow_zero=True)
        positive("beta", self.beta, allow_zero=True)
        positive("epsilon", self.epsilon)
        one_of("loss_type", self.loss_type, GRPO_LOSS_TYPES)
        one_of("advantage_estimator", self.advantage_estimator, ESTIMATORS)
        if self.scale_rewards is None:
            self.scale_rewards = DEFAULT_SCALE[self.advantage_estimator]
        one_of("scale_rewards", self.scale_rewards, ("group", "batch", "none"))
        if self.kl_in_reward is None:
            self.kl_in_reward = DEFAULT_KL_IN_REWARD[self.advantage_estimator] and self.beta > 0
        elif self.kl_in_reward and self.beta == 0:
            raise ConfigError(
                "kl_in_reward",
                "moves the KL penalty into the reward, but beta=0 means there is no KL penalty; "
                "set algorithm.beta > 0 or drop algorithm.kl_in_reward",
            )
        positive("num_iterations", self.num_iterations)
        one_of("importance_sampling_level", self.importance_sampling_level, ("token", "sequence"))
        if self.epsilon_high is not None:
            positive("epsilon_high", self.epsilon_high)
        if self.loss_type == "cispo" and (self.epsilon_high is None or self.epsilon_high < 1.0):
            # CISPO caps the ratio itself at epsilon_high; TRL falls back to epsilon (0.2), which would cap
            # every ratio far below 1 and shrink every update.
            raise ConfigError(
                "epsilon_high",
                f"CISPO caps the importance ratio at epsilon_high, so it must be >= 1 (the recipe uses 5.0), "
                f"got {self.epsilon_high}; use algorithm=cispo or set algorithm.epsilon_high=5.0",
            )
        if self.importance_sampling_level == "sequence" and self.loss_type in _TOKEN_LEVEL_LOSSES:
            raise ConfigError(
                "importance_sampling_level",
                f"sequence (GSPO) needs a per-sequence loss (grpo, sapo, luspo), not loss_type={self.loss_type}",
            )
        if self.loss_type == "luspo" and self.importance_sampling_level != "sequence":
            raise ConfigError("importance_sampling_level", "luspo needs importance_sampling_level=sequence")
        if self.loss_type == "vespo" and self.importance_sampling_level != "token":
            raise ConfigError("importance_sampling_level", "vespo needs importance_sampling_level=token")
        positive("sapo_temperature_pos", self.sapo_temperature_pos)
        positive("sapo_temperature_neg", self.sapo_temperature_neg)
        positive("max_resample_times", self.max_resample_times, allow_zero=True)
        _vllm_check(self.use_vllm, self.vllm_mode)
        if self.max_turns is not None:
            positive("max_turns", self.max_turns)
            if not self.uses_tools:
                raise ConfigError(
                    "max_turns", "limits tool-calling turns, but no algorithm.tools or algorithm.environment is set"
                )
        in_range("vllm_gpu_memory_utilization", self.vllm_gpu_memory_utilization, 0.0, 1.0)

    @property
    def uses_tools(self) -> bool:
        return bool(self.tools) or self.environment is not None

    @property
    def own_reward(self) -> bool:
        return self.environment is not None  # its get_reward, checked in check_run

    @property
    def tool_iterations(self) -> int | None:
        """TRL's max_tool_calling_iterations: tool rounds after the first turn."""
        return None if self.max_turns is None else self.max_turns - 1

    def plan_facts(self, tuner: str, backend: str = "single", cpu_bf16: bool = False):
        from rlhf_lab.planning.facts import PlanFacts

        frozen = {"reference": None} if self.beta > 0 and tuner == "full" else {}
        if self.reward_model:
            frozen["reward_model"] = self.reward_model
        # generation_copy=auto samples from the copy on a CPU with bf16, with LoRA (build.use_generation_copy).
        auto = self.generation_copy == "auto" and cpu_bf16 and self.generation_copy_blocker(tuner, backend) is None
        return PlanFacts(
            frozen=frozen,
            generated_tokens=self.max_completion_length,
            generation_copy=self.generation_copy == "on" or auto,
        )

    def generation_copy_blocker(self, tuner: str, backend: str) -> str | None:
        """Why the generation copy cannot be used with this tuner and engine; None when it can."""
        if tuner != "lora":
            return f"it merges LoRA adapters, not tuner={tuner}"
        if self.use_vllm:
            return "vLLM generates instead"
        if backend not in WHOLE_MODEL_BACKENDS:
            return f"it needs the whole policy in each process, not distributed={backend}"
        return None

    def prepare_tokenizer(self, tokenizer, model_name: str) -> None:
        if self.uses_tools:
            from rlhf_lab.models.tool_template import prepare_for_tools

            prepare_for_tools(tokenizer, model_name)

    def check_data(self, rows: list[dict]) -> None:
        super().check_data(rows)
        from rlhf_lab.data.images import has_images

        if self.generation_copy == "on" and has_images(rows):
            raise ConfigError("algorithm.generation_copy", "cannot be on with image rows; use auto or off")
        if self.uses_tools and has_images(rows):
            raise ConfigError(
                "algorithm.tools", "tool calling is not supported with image rows yet; use text rows, or no tools"
            )
        if self.kl_in_reward and has_images(rows):
            raise ConfigError(
                "algorithm.kl_in_reward",
                "is not supported with image rows yet (the KL is summed over text-only forwards); "
                "set algorithm.kl_in_reward=false to keep the KL term in the loss",
            )

    def check_run(self, parts: dict) -> None:
        super().check_run(parts)
        from rlhf_lab.algorithms.grpo.tools import owns_reward, resolve_environment, resolve_tools

        # Tools and the environment are imported and checked here, as the rewards are, before any model loads.
        names = [t.__name__ for t in resolve_tools(self.tools)]
        if self.environment is not None:
            from rlhf_lab.algorithms.grpo.tools import environment_tools

            cls, _ = resolve_environment(self.environment)
            clash = sorted(set(names) & set(environment_tools(cls)))
            if clash:
                raise ConfigError("algorithm.tools", f"{clash[0]!r} is both a tool and a method of the environment")
            others = self.reward_funcs or self.reward_model or self.reward_server
            if not others and not owns_reward(self.environment):
                raise ConfigError(
                    "algorithm.reward_funcs",
                    f"GRPO needs at least one reward: the environment {cls.__name__!r} has no get_reward(), so list "
                    "reward functions, or give algorithm.reward_model / algorithm.reward_server",
                )
        train, world = parts["train"], parts["distributed"].nproc_per_node * parts["distributed"].nnodes
        batch = train.per_device_train_batch_size * train.gradient_accumulation_steps * world
        if batch % self.num_generations:
            raise ConfigError(
                "algorithm.num_generations",
                f"the global batch (per_device_train_batch_size {train.per_device_train_batch_size} x "
                f"gradient_accumulation_steps {train.gradient_accumulation_steps} x {world} processes = {batch} "
                f"answers) must be a multiple of num_generations ({self.num_generations}); change "
                "train.per_device_train_batch_size, train.gradient_accumulation_steps or algorithm.num_generations",
            )
        why = self.generation_copy_blocker(parts["tuner"].name, parts["distributed"].backend)
        if self.generation_copy == "on" and why:
            raise ConfigError("algorithm.generation_copy", f"cannot be on: {why}; use auto or off")
        local = train.per_device_train_batch_size * train.gradient_accumulation_steps
        if self.dynamic_sample and local % self.num_generations:
            # Groups are dropped and refilled per process, so each process must hold whole groups.
            raise ConfigError(
                "algorithm.dynamic_sample",
                f"needs whole groups on each process: per_device_train_batch_size x gradient_accumulation_steps "
                f"({local}) must be a multiple of num_generations ({self.num_generations})",
            )
