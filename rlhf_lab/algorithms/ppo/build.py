"""PPO: builds the four models and rlhf_lab's own PPO trainer (algorithms/ppo/trainer.py).

- policy: the run's model, with LoRA adapters (tuner=lora) or fully trainable;
- reference: the policy with adapters disabled (LoRA), else a frozen copy (or algorithm.ref_model);
- critic: a sequence classifier from algorithm.value_model, else the reward model, else the policy's checkpoint
  with a new head; trained with the same tuner as the policy;
- reward: algorithm.reward_model (with LoRA and the default critic, the critic with its adapters disabled: one
  copy of the reward model's weights) and/or algorithm.reward_funcs.
"""

from __future__ import annotations

from contextlib import nullcontext

from rlhf_lab.algorithms.common import TrainInputs, extra_model, load_reward_model, reference_model, trainer_args
from rlhf_lab.algorithms.ppo.config import PPOConfig
from rlhf_lab.config.run import Run
from rlhf_lab.errors import ModelError


def load_critic(run: Run, inputs: TrainInputs):
    """The trainable value model, on the policy's tokens."""
    from rlhf_lab.models.load import load_causal_lm, load_tokenizer

    cfg: PPOConfig = run.algorithm
    path = cfg.value_model or cfg.reward_model
    if path is None:  # the policy's own checkpoint with a new head
        model = load_causal_lm(run.model, inputs.bf16, head="reward")
    else:
        field = "value_model" if cfg.value_model else "reward_model"
        critic, key = extra_model(run, field)
        model = load_causal_lm(critic, inputs.bf16, head="reward", key=key)
        tokenizer = load_tokenizer(critic, key)
        if tokenizer.get_vocab() != inputs.tokenizer.get_vocab():
            raise ModelError(
                f"the critic starts from {key}={path}, whose tokenizer differs from the policy's; the "
                "critic reads the policy's tokens, so set algorithm.value_model to a sequence classifier of the "
                "policy's family (e.g. a reward model trained from it with algorithm=rm)"
            )
    model.config.pad_token_id = inputs.tokenizer.pad_token_id
    return model


def build(run: Run, inputs: TrainInputs):
    from peft import get_peft_model
    from transformers import TrainingArguments

    from rlhf_lab.algorithms.ppo.models import RewardScorer, disable_dropout, reference_context
    from rlhf_lab.algorithms.ppo.trainer import LabPPOTrainer
    from rlhf_lab.models.tuners import peft_config
    from rlhf_lab.rewards.registry import build_rewards

    cfg: PPOConfig = run.algorithm
    lora = inputs.peft_config is not None
    policy = get_peft_model(inputs.model, inputs.peft_config) if lora else inputs.model
    ref_model = reference_model(run, inputs, cfg.ref_model)
    if ref_model is not None:
        ref_model.requires_grad_(False).eval()

    value_model = load_critic(run, inputs)
    if lora:
        value_model = get_peft_model(value_model, peft_config(run.tuner, run.algorithm.disable_dropout, head="reward"))
    for model in (policy, value_model):
        disable_dropout(model)
    if run.train.gradient_checkpointing:
        for model in (policy, value_model):
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    reward_model = reward_tokenizer = None
    model_context = nullcontext
    if cfg.reward_model is not None:
        if lora and cfg.value_model is None:
            # The critic is the reward model plus adapters and a copy of its head: switched off, it is the
            # reward model again, so its weights are held once.
            from rlhf_lab.models.load import load_tokenizer

            reward_model, model_context = value_model, value_model.disable_adapter
            reward_tokenizer = load_tokenizer(*extra_model(run, "reward_model"))
        else:
            reward_model, reward_tokenizer = load_reward_model(run, inputs.bf16)
    args = trainer_args(run, inputs.bf16)
    # Plain TrainingArguments: no dataset preparation; PPO switches dropout off itself (its schema requires it).
    del args["dataset_num_proc"], args["disable_dropout"]
    training_args = TrainingArguments(**args)
    scorer = RewardScorer(
        build_rewards(cfg),
        list(cfg.reward_weights) if cfg.reward_weights is not None else None,
        reward_model=reward_model,
        reward_tokenizer=reward_tokenizer,
        model_context=model_context,
        batch_size=cfg.local_rollout_forward_batch_size,
    )
    trainer = LabPPOTrainer(
        policy=policy,
        value_model=value_model,
        ref_model=ref_model,
        ref_context=reference_context(policy, ref_model),
        scorer=scorer,
        cfg=cfg,
        args=training_args,
        tokenizer=inputs.tokenizer,
        train_rows=inputs.splits.train,
        # Rows are read per rollout anyway; read per batch (lazy_tokenize), each drawn row is also length-checked.
        row_at=inputs.lazy.draw if inputs.lazy else None,
        callbacks=inputs.callbacks,
    )
    scorer.autocast = trainer.accelerator.autocast
    if reward_model is not None and reward_model is not value_model:
        reward_model.to(training_args.device)
    return trainer
