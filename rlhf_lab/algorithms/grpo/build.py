"""GRPO and its recipes (DAPO, SAPO, CISPO) on TRL's GRPOTrainer, with dynamic sampling added
(algorithms/grpo/trainer.py) and rewards from rlhf_lab.rewards."""

from __future__ import annotations

from rlhf_lab.algorithms.common import TrainInputs, load_reward_model, trainer_args, trl_dataset
from rlhf_lab.algorithms.grpo.config import GRPOConfig
from rlhf_lab.config.run import Run


def trl_args(run: Run, bf16: bool):
    from trl import GRPOConfig as TRLGRPOConfig

    cfg: GRPOConfig = run.algorithm
    vllm = {}
    if cfg.use_vllm:
        vllm = dict(
            vllm_mode=cfg.vllm_mode,
            vllm_server_host=cfg.vllm_server_host,
            vllm_server_port=cfg.vllm_server_port,
            vllm_gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
        )
    base = trainer_args(run, bf16)
    del base["dataset_num_proc"]  # GRPO tokenizes at generation time: no dataset map step
    return TRLGRPOConfig(
        **base,
        num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        top_k=cfg.top_k,
        repetition_penalty=cfg.repetition_penalty,
        beta=cfg.beta,
        epsilon=cfg.epsilon,
        epsilon_high=cfg.epsilon_high,
        loss_type=cfg.loss_type,
        scale_rewards=cfg.scale_rewards,
        num_iterations=cfg.num_iterations,
        importance_sampling_level=cfg.importance_sampling_level,
        reward_weights=list(cfg.reward_weights) if cfg.reward_weights is not None else None,
        sapo_temperature_pos=cfg.sapo_temperature_pos,
        sapo_temperature_neg=cfg.sapo_temperature_neg,
        mask_truncated_completions=cfg.overlong_filter,
        use_vllm=cfg.use_vllm,
        log_completions=cfg.log_completions,
        max_tool_calling_iterations=cfg.tool_iterations,
        # Prompts and answers are read from the dataset's own columns; keep the reward columns.
        remove_unused_columns=False,
        **vllm,
    )


def build(run: Run, inputs: TrainInputs):
    from rlhf_lab.algorithms.grpo.trainer import LabGRPOTrainer
    from rlhf_lab.patches.scored_positions import score_only_labelled_positions
    from rlhf_lab.rewards.registry import build_rewards

    cfg: GRPOConfig = run.algorithm
    score_only_labelled_positions()
    rewards: list = build_rewards(cfg)
    processing: list = [None] * len(rewards)
    if cfg.reward_model is not None:
        model, tokenizer = load_reward_model(run, inputs.bf16)
        rewards.append(model)
        processing.append(tokenizer)
    from rlhf_lab.algorithms.lazy_rows import row_indices

    lazy = inputs.lazy
    rows = inputs.splits.train
    kwargs = inputs.trainer_kwargs(row_indices(len(rows)) if lazy else trl_dataset(rows))
    if inputs.vision:
        from rlhf_lab.vision.batches import pixel_bounds

        kwargs["image_bounds"] = pixel_bounds(run)
    tools = {}
    if cfg.uses_tools:
        from rlhf_lab.algorithms.grpo.tools import resolve_environment, resolve_tools

        tools["tools"] = resolve_tools(cfg.tools)
        if cfg.environment is not None:
            tools["environment_factory"] = resolve_environment(cfg.environment)[1]
    trainer = LabGRPOTrainer(
        reward_funcs=rewards,
        reward_processing_classes=processing,
        args=trl_args(run, inputs.bf16),
        dynamic_sample=cfg.dynamic_sample,
        max_resample_times=cfg.max_resample_times,
        generation_copy=use_generation_copy(run, inputs),
        advantage_estimator=cfg.advantage_estimator,
        kl_in_reward=cfg.kl_in_reward,
        **tools,
        **kwargs,
    )
    # GRPO tokenizes prompts when it generates: read per batch, its rows only need decoding.
    return lazy.attach(trainer, None) if lazy else trainer


def use_generation_copy(run: Run, inputs: TrainInputs) -> bool:
    """algorithm.generation_copy resolved: auto samples from a merged bf16 copy where it can and where that is faster
    (a CPU with fast bf16, which is when bf16 is on there); the config check already refused 'on' where it cannot."""
    import torch

    cfg: GRPOConfig = run.algorithm
    if cfg.generation_copy == "off" or inputs.vision:  # 'on' with image rows was refused with the data
        return False
    if cfg.generation_copy == "on":
        return True
    return (
        cfg.generation_copy_blocker(run.tuner.name, run.distributed.backend) is None
        and inputs.bf16
        and not torch.cuda.is_available()
    )
