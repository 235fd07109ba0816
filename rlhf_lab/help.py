"""`python -m rlhf_lab --help`: usage, the options of each config group, and the composed config."""

from __future__ import annotations

from pathlib import Path

from rlhf_lab.schema.root import GROUPS

USAGE = """\
rlhf_lab: RLHF experiments from one command (DPO and friends, GRPO, GKD, PPO on TRL, transformers, peft, DeepSpeed).

  python -m rlhf_lab                                    # DPO + LoRA on SmolLM2-135M-Instruct, bundled data
  python -m rlhf_lab model=tiny train.max_steps=2       # a smoke run on a tiny random model
  python -m rlhf_lab algorithm=grpo dataset=arith_math  # GRPO with accuracy + format rewards
  python -m rlhf_lab algorithm=gkd algorithm.teacher_model=PATH_OR_PRESET dataset=arith_chat   # distillation
  python -m rlhf_lab algorithm=ppo algorithm.reward_model=RM_DIR dataset=arith_pairs   # PPO against a reward model
  python -m rlhf_lab dataset=custom dataset.path=/data/pairs.jsonl
  python -m rlhf_lab model=qwen3_vl_8b dataset=custom dataset.path=/data/mm_pairs.jsonl   # rows with images
  python -m rlhf_lab -m algorithm.beta=0.05,0.1 algorithm.loss_type=sigmoid,ipo   # a sweep
  python -m rlhf_lab distributed=zero2 distributed.nproc_per_node=8   # 8 processes (DeepSpeed ZeRO-2)
  python -m rlhf_lab -m hydra/launcher=slurm hydra.launcher.partition=gpu algorithm.beta=0.05,0.1   # on SLURM
  python -m rlhf_lab hparams_search=dpo_beta                # an Optuna search over beta and learning rate
  python -m rlhf_lab hydra.run.dir=outputs/runs/a train.save_steps=50   # run it again to resume (train.resume=auto)
  python -m rlhf_lab --cfg job                          # the composed config, without running
  python -m rlhf_lab --hydra-help                       # Hydra's own flags
"""


def render_help(conf_dir: str, overrides: list[str]) -> str:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    groups = "\n".join(
        f"  {g:<12} {', '.join(sorted(p.stem for p in (Path(conf_dir) / g).glob('*.yaml')))}" for g in GROUPS
    )
    with initialize_config_dir(conf_dir, version_base="1.3", job_name="rlhf_lab"):
        cfg = compose("config", overrides=overrides)
    return (
        f"{USAGE}\nConfig groups (group=option):\n{groups}\n\n"
        f"Config (any key can be set with key=value; values are type-checked before anything loads):\n"
        f"{OmegaConf.to_yaml(cfg)}"
    )
