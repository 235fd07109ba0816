"""Algorithm name -> everything about it: its schema, data format, builder and evaluation. The only place that
branches on the algorithm, and the only place its name is written (the config store is built from it).

Adding an algorithm: one folder algorithms/<family>/ (its options in config.py, its builder, its trainer), one YAML
file conf/algorithm/<name>.yaml choosing the schema, and one entry here. Everything is named by "module:attribute"
and imported when used: options when the config store is built (light modules), builders only when a run trains, so
config-only commands stay free of torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class AlgorithmSpec:
    name: str
    # "module:Class" of its settings, the schema dataclass of algorithm.* (registered in Hydra's config store as
    # schema/algorithm/<name>).
    schema: str
    # Row format it reads (data/formats.py).
    data_format: str
    # "module:attribute" of its builder: build(run, model, tokenizer, data, callbacks) -> Trainer.
    builder: str
    # Held-out evaluation before and after training (evaluation/<name>.py), or None.
    evaluation: str | None
    # The distributed backends it runs under (TRL's trainers support them all through transformers' Trainer).
    distributed: tuple[str, ...] = ("single", "ddp", "deepspeed", "fsdp")
    # Which head the model is loaded with: causal_lm, or reward (sequence classification, one score).
    model_head: str = "causal_lm"
    # Save LoRA runs merged into a full model (reward models are loaded by later runs as plain models).
    merge_adapter: bool = False
    # Reads rows with images (vision-language models; see vision/batches.py).
    images: bool = False
    # dataset.truncation when unset: right (TRL cuts the end), or delete where a cut row cannot train (data/lengths.py).
    truncation: str = "right"
    # The held-out metric that says whether a run learned (a key of its evaluation's result; the first one present
    # wins), and which way is better. Read by scripts/learning_report.py.
    held_out_metric: tuple[str, ...] = ("accuracy",)
    lower_is_better: bool = False

    def load_schema(self) -> type:
        return load_target(self.schema)

    def load_builder(self):
        return load_target(self.builder)

    def load_evaluation(self):
        return None if self.evaluation is None else load_target(self.evaluation)


def load_target(target: str):
    """The object a "module:attribute" string names, imported now."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


_PAIR_EVAL = "rlhf_lab.evaluation.preference:PreferenceEval"

ALGORITHMS: dict[str, AlgorithmSpec] = {
    "dpo": AlgorithmSpec(
        "dpo",
        "rlhf_lab.algorithms.preference.config:DPOConfig",
        data_format="pairs",
        builder="rlhf_lab.algorithms.preference.dpo:build",
        evaluation=_PAIR_EVAL,
        images=True,
    ),
    "kto": AlgorithmSpec(
        "kto",
        "rlhf_lab.algorithms.preference.config:KTOConfig",
        data_format="kto",
        builder="rlhf_lab.algorithms.preference.kto:build",
        evaluation="rlhf_lab.evaluation.preference:LabelledEval",
        images=True,
    ),
    "cpo": AlgorithmSpec(
        "cpo",
        "rlhf_lab.algorithms.preference.config:CPOConfig",
        data_format="pairs",
        builder="rlhf_lab.algorithms.preference.cpo:build",
        evaluation=_PAIR_EVAL,
        images=True,
    ),
    "simpo": AlgorithmSpec(
        "simpo",
        "rlhf_lab.algorithms.preference.config:SimPOConfig",
        data_format="pairs",
        builder="rlhf_lab.algorithms.preference.cpo:build",
        evaluation=_PAIR_EVAL,
        images=True,
    ),
    "orpo": AlgorithmSpec(
        "orpo",
        "rlhf_lab.algorithms.preference.config:ORPOConfig",
        data_format="pairs",
        builder="rlhf_lab.algorithms.preference.orpo:build",
        evaluation=_PAIR_EVAL,
        images=True,
    ),
    "rm": AlgorithmSpec(
        "rm",
        "rlhf_lab.algorithms.preference.config:RewardModelConfig",
        data_format="pairs",
        builder="rlhf_lab.algorithms.preference.rm:build",
        evaluation="rlhf_lab.evaluation.reward:RewardEval",
        model_head="reward",
        merge_adapter=True,
        images=True,
        # A reward is read at the answer's last token: TRL's reward trainer drops longer pairs rather than cut them.
        truncation="delete",
    ),
    "grpo": AlgorithmSpec(
        "grpo",
        "rlhf_lab.algorithms.grpo.config:GRPOConfig",
        data_format="prompts",
        builder="rlhf_lab.algorithms.grpo.build:build",
        evaluation="rlhf_lab.evaluation.online:HeldOutReward",
        images=True,
        held_out_metric=("reward/accuracy", "reward"),
    ),
    "gkd": AlgorithmSpec(
        "gkd",
        "rlhf_lab.algorithms.gkd.config:GKDConfig",
        data_format="sft",
        builder="rlhf_lab.algorithms.gkd.build:build",
        evaluation="rlhf_lab.evaluation.distill:TeacherDivergence",
        images=True,
        held_out_metric=("divergence",),
        lower_is_better=True,
    ),
    "ppo": AlgorithmSpec(
        "ppo",
        "rlhf_lab.algorithms.ppo.config:PPOConfig",
        data_format="prompts",
        builder="rlhf_lab.algorithms.ppo.build:build",
        evaluation="rlhf_lab.evaluation.online:HeldOutScore",
        # rlhf_lab's own loop steps the optimizer itself; DeepSpeed and FSDP own that step.
        distributed=("single", "ddp"),
        # Accuracy against the rows' solution column where they have one, else the reward model's score.
        held_out_metric=("accuracy", "score"),
    ),
}


def get_spec(name: str) -> AlgorithmSpec:
    try:
        return ALGORITHMS[name]
    except KeyError:
        from rlhf_lab.errors import ConfigError

        raise ConfigError("algorithm.name", f"no builder for {name!r}; known: {', '.join(ALGORITHMS)}") from None
