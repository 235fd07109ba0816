"""ms-swift's `swift rlhf` flags (and the TRL names users bring) and what each one is in rlhf_lab.

One table, read two ways: `from-swift` turns a whole command line into overrides, and a config error on an unknown
key points at the rlhf_lab key (output_dir -> hydra.run.dir=DIR). A flag is mapped to a key, mapped by a function
of its values, not needed (rlhf_lab does that by itself) or refused (no equivalent), always with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from rlhf_lab.cli.hydra_flags import HYDRA_FLAGS
from rlhf_lab.errors import ConfigError


class Refused(Exception):
    """A flag value that has no rlhf_lab equivalent; the message says why."""


@dataclass(frozen=True)
class Flag:
    # The rlhf_lab key the value goes to (a list of values: a list).
    key: str | None = None
    # Or: the overrides for the flag's values (raise Refused for a value with no equivalent).
    convert: Callable[[list[str]], list[str]] | None = None
    # What to write instead, for a hint (defaults to KEY=VALUE).
    hint: str = ""
    # Not needed: rlhf_lab does this by itself (why).
    unneeded: str = ""
    # No equivalent (why).
    refused: str = ""
    # Takes several values (a list) rather than one.
    many: bool = False

    def pointer(self) -> str:
        if self.hint:
            return self.hint
        if self.key:
            return f"{self.key}=..."
        return self.unneeded or self.refused


def _value(text: str) -> str:
    """A value as a Hydra override writes it: quoted unless it is plain."""
    if re.fullmatch(r"[\w.+\-/:@]+", text) and not text.startswith(("+", "~")):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def as_override(key: str, values: list[str], many: bool) -> str:
    if many:
        return f"{key}=[{','.join(_value(v) for v in values)}]"
    return f"{key}={_value(values[0])}"


def _one(values: list[str], flag: str) -> str:
    if len(values) != 1:
        raise Refused(f"{flag} takes one value here, got {len(values)}")
    return values[0]


def _choice(flag: str, table: dict[str, list[str]], why: str = "") -> Callable[[list[str]], list[str]]:
    def convert(values: list[str]) -> list[str]:
        value = _one(values, flag)
        if value not in table:
            raise Refused(f"{flag} {value} has no rlhf_lab equivalent (it takes {', '.join(table)}){why}")
        return table[value]

    return convert


def _model(values: list[str]) -> list[str]:
    from rlhf_lab.config.presets import preset_named_for

    value = _one(values, "--model")
    preset = preset_named_for(value)
    return [f"model={preset}"] if preset else ["model=custom", as_override("model.name_or_path", [value], False)]


def _dataset_parts(values: list[str], flag: str) -> tuple[list[str], set[str]]:
    """ms-swift's SOURCE[:SUBSET][#N] entries: (sources with #N, the subsets named)."""
    sources, subsets = [], set()
    for value in values:
        base, hash_, count = value.partition("#")
        # A subset follows the last ':' of a hub id (a Windows drive or a URL is not one).
        if ":" in base and not re.match(r"^[A-Za-z]:[\\/]|^\w+://", base):
            base, _, subset = base.rpartition(":")
            subsets.add(subset)
        if "$" in value:
            raise Refused(f"{flag} {value} holds a shell expression; give the value itself")
        sources.append(base + hash_ + count)
    return sources, subsets


def _dataset(values: list[str]) -> list[str]:
    sources, subsets = _dataset_parts(values, "--dataset")
    if len(subsets) > 1:
        raise Refused(
            f"--dataset names {len(subsets)} different subsets; rlhf_lab takes one dataset.subset for all "
            "sources: run the subsets as separate sources (download them) or pick one"
        )
    out = ["dataset=custom", as_override("dataset.path", sources, len(sources) > 1)]
    if subsets:
        out.append(as_override("dataset.subset", sorted(subsets), False))
    return out


def _val_dataset(values: list[str]) -> list[str]:
    sources, subsets = _dataset_parts(values, "--val_dataset")
    if subsets:
        raise Refused("--val_dataset with a :subset has no equivalent; name the held-out file or folder itself")
    return [as_override("dataset.val_path", sources, len(sources) > 1)]


def _deepspeed(values: list[str]) -> list[str]:
    table = {
        "zero0": ["distributed=zero2", "distributed.zero_stage=0"],
        "zero1": ["distributed=zero2", "distributed.zero_stage=1"],
        "zero2": ["distributed=zero2"],
        "zero2_offload": ["distributed=zero2", "distributed.offload_optimizer=cpu"],
        "zero3": ["distributed=zero3"],
        "zero3_offload": ["distributed=zero3_offload"],
    }
    value = _one(values, "--deepspeed")
    if value not in table:
        raise Refused(
            f"--deepspeed {value}: a DeepSpeed JSON file is not read; rlhf_lab writes the DeepSpeed config "
            "from distributed.* (distributed=zero2|zero3|zero3_offload, distributed.zero_stage, "
            "distributed.offload_optimizer, distributed.offload_param)"
        )
    return table[value]


def _report_to(values: list[str]) -> list[str]:
    known = {"wandb": "logger=wandb", "tensorboard": "logger=tensorboard", "none": "logger=none"}
    chosen = [v for v in values if v in known]
    other = [v for v in values if v not in known and v != "all"]
    if other or len(chosen) > 1:
        raise Refused(
            f"--report_to {' '.join(values)}: rlhf_lab logs to one of wandb, tensorboard or none (and always "
            "to metrics.jsonl); choose one"
        )
    return [known[chosen[0]]] if chosen else ["logger=wandb"]


def _target_modules(values: list[str]) -> list[str]:
    if values == ["all-linear"]:
        return ["tuner.target_modules=all-linear"]
    return [as_override("tuner.target_modules", values, True)]


def _attn(values: list[str]) -> list[str]:
    value = _one(values, "--attn_impl")
    names = {"flash_attn": "flash_attention_2"}
    return [f"model.attn_implementation={names.get(value, value)}"]


def _truncation(values: list[str]) -> list[str]:
    value = _one(values, "--truncation_strategy")
    if value not in ("delete", "right"):
        raise Refused(
            f"--truncation_strategy {value}: rlhf_lab cuts rows on the right or deletes them "
            "(dataset.truncation=right|delete|error)"
        )
    return [f"dataset.truncation={value}"]


# --output_dir DIR: like ms-swift's DIR/v<N>-<time>, each run gets a folder of its own inside DIR.
RUN_NAME = "${rlhf_lab_start:%Y%m%d-%H%M%S}-${rlhf_lab_unique:}"
_NO_PERIODIC_EVAL = "rlhf_lab evaluates on the held-out rows before and after training (train.eval), not every N steps"
_HUB = "the Hugging Face Hub is rlhf_lab's hub; a ModelScope id may differ there (check it, or give a local path)"

FLAGS: dict[str, Flag] = {
    # --- what is trained
    "rlhf_type": Flag(
        convert=_choice(
            "--rlhf_type",
            {a: [f"algorithm={a}"] for a in ("dpo", "kto", "cpo", "simpo", "orpo", "rm", "ppo", "grpo", "gkd")},
        ),
        hint="algorithm=NAME (dpo, kto, cpo, simpo, orpo, rm, ppo, grpo, dapo, sapo, cispo, gkd)",
    ),
    "model": Flag(convert=_model, hint="model=PRESET, or model.name_or_path=HUB_ID_OR_DIR"),
    "model_name_or_path": Flag(key="model.name_or_path"),
    "model_revision": Flag(key="model.revision"),
    "model_type": Flag(unneeded="the architecture is read from the model's config.json"),
    "template": Flag(unneeded="the chat template is the tokenizer's own"),
    "torch_dtype": Flag(key="model.torch_dtype"),
    "attn_impl": Flag(convert=_attn, hint="model.attn_implementation=..."),
    "max_pixels": Flag(key="model.max_pixels"),
    "min_pixels": Flag(key="model.min_pixels"),
    "use_hf": Flag(unneeded=_HUB),
    "train_type": Flag(
        convert=_choice("--train_type", {"lora": ["tuner=lora"], "full": ["tuner=full"]}), hint="tuner=lora|full"
    ),
    "tuner_type": Flag(
        convert=_choice("--tuner_type", {"lora": ["tuner=lora"], "full": ["tuner=full"]}), hint="tuner=lora|full"
    ),
    "use_peft": Flag(
        convert=_choice("--use_peft", {"true": ["tuner=lora"], "false": ["tuner=full"]}), hint="tuner=lora|full"
    ),
    "lora_rank": Flag(key="tuner.r"),
    "lora_r": Flag(key="tuner.r"),
    "lora_alpha": Flag(key="tuner.alpha"),
    "lora_dropout": Flag(key="tuner.dropout"),
    "target_modules": Flag(convert=_target_modules, hint="tuner.target_modules=..."),
    "lora_target_modules": Flag(convert=_target_modules, hint="tuner.target_modules=..."),
    "freeze_vit": Flag(key="tuner.freeze_vit"),
    "freeze_aligner": Flag(key="tuner.freeze_aligner"),
    "freeze_llm": Flag(refused="the language model is always trained"),
    "adapters": Flag(
        refused="a run starts from a model, not from an adapter: merge the adapter into its base first "
        "and give that folder as model.name_or_path"
    ),
    # --- the algorithm's settings (checked against the chosen algorithm's schema)
    **{
        name: Flag(key=f"algorithm.{name}")
        for name in (
            "beta",
            "rpo_alpha",
            "label_smoothing",
            "cpo_alpha",
            "simpo_gamma",
            "desirable_weight",
            "undesirable_weight",
            "center_rewards_coefficient",
            "ref_model",
            "ref_model_revision",
            "teacher_model",
            "teacher_model_revision",
            "lmbda",
            "seq_kd",
            "sft_alpha",
            "max_completion_length",
            "temperature",
            "num_generations",
            "reward_model",
            "reward_model_revision",
            "epsilon",
            "epsilon_high",
            "num_iterations",
            "importance_sampling_level",
            "scale_rewards",
            "advantage_estimator",
            "kl_in_reward",
            "max_turns",
            "dynamic_sample",
            "max_resample_times",
            "overlong_filter",
            "soft_max_length",
            "soft_cache_length",
            "log_completions",
            "top_p",
            "top_k",
            "repetition_penalty",
            "use_vllm",
            "vllm_mode",
            "vllm_gpu_memory_utilization",
            "vllm_server_host",
            "vllm_server_port",
            "num_ppo_epochs",
            "whiten_rewards",
            "kl_coef",
            "cliprange",
            "vf_coef",
            "cliprange_value",
            "gamma",
            "lam",
            "num_mini_batches",
            "local_rollout_forward_batch_size",
            "missing_eos_penalty",
            "precompute_ref_log_probs",
        )
    },
    **{name: Flag(key=f"algorithm.{name}", many=True) for name in ("reward_funcs", "reward_weights", "loss_weights")},
    "loss_type": Flag(
        convert=lambda v: [as_override("algorithm.loss_type", v, len(v) > 1)], hint="algorithm.loss_type=..."
    ),
    "response_length": Flag(key="algorithm.max_completion_length"),
    "tau_pos": Flag(key="algorithm.sapo_temperature_pos"),
    "tau_neg": Flag(key="algorithm.sapo_temperature_neg"),
    "external_plugins": Flag(
        refused="name your reward functions in algorithm.reward_funcs as module:function (the module on PYTHONPATH)"
    ),
    **{
        name: Flag(refused="not implemented in rlhf_lab")
        for name in (
            "ld_alpha",
            "discopop_tau",
            "ref_adapters",
            "ref_model_type",
            "reward_adapters",
            "reward_model_type",
            "reward_model_plugin",
            "teacher_adapters",
            "teacher_model_type",
            "offload_teacher_model",
            "delta",
            "steps_per_generation",
            "generation_batch_size",
            "advantage_estimator",
            "kl_in_reward",
            "multi_turn_scheduler",
            "max_turns",
            "sync_ref_model",
            "loss_scale",
            "top_entropy_quantile",
            "log_entropy",
            "num_generations_eval",
            "num_sample_generations",
            "vllm_tensor_parallel_size",
            "vllm_enable_lora",
            "vllm_limit_mm_per_prompt",
            "vllm_enforce_eager",
            "vllm_server_base_url",
            "vllm_server_timeout",
            "sleep_level",
            "offload_model",
            "offload_optimizer",
            "move_model_batches",
            "async_generate",
            "completion_length_limit_scope",
            "stop_words",
            "agent_template",
            "vllm_server_pass_dataset",
            "use_liger_kernel",
            "packing",
            "padding_free",
            "sequence_parallel_size",
            "deepspeed_autotp_size",
            "freeze_parameters",
            "padding_side",
            "streaming",
            "dataset_shuffle",
            "metric_for_best_model",
            "create_checkpoint_symlink",
            "eval_strategy",
            "save_strategy",
            "gradient_checkpointing_kwargs",
            "dataloader_drop_last",
        )
    },
    "vllm_max_model_len": Flag(
        unneeded="the generation length follows train.max_length and algorithm.max_completion_length"
    ),
    "vllm_enable_prefix_caching": Flag(unneeded="vLLM's own default is kept"),
    "teacher_deepspeed": Flag(unneeded="the teacher runs under the run's own distributed option"),
    "system": Flag(
        refused="there is no default system prompt setting: put a system turn (or a system column) in the rows"
    ),
    # --- training
    **{
        name: Flag(key=f"train.{name}")
        for name in (
            "learning_rate",
            "num_train_epochs",
            "max_steps",
            "per_device_train_batch_size",
            "per_device_eval_batch_size",
            "gradient_accumulation_steps",
            "warmup_ratio",
            "save_steps",
            "save_total_limit",
            "gradient_checkpointing",
            "seed",
            "lr_scheduler_type",
            "weight_decay",
            "max_grad_norm",
            "logging_steps",
            "max_length",
            "dataset_num_proc",
            "bf16",
        )
    },
    "resume_from_checkpoint": Flag(key="train.resume"),
    "eval_steps": Flag(refused=_NO_PERIODIC_EVAL),
    "save_only_model": Flag(
        refused="checkpoints keep the optimizer state, so that train.resume continues them exactly; "
        "the final model is saved on its own (adapter/ or model/)"
    ),
    "load_from_cache_file": Flag(unneeded="rows are read and converted in seconds; there is no preprocessing cache"),
    "dataloader_num_workers": Flag(unneeded="rows are read into memory before training; batches need no workers"),
    "ddp_timeout": Flag(refused="not configurable (torch's default)"),
    # --- data
    "dataset": Flag(convert=_dataset, hint="dataset=NAME, or dataset=custom dataset.path=SOURCE"),
    "dataset_name": Flag(convert=_dataset, hint="dataset=NAME, or dataset=custom dataset.path=SOURCE"),
    "val_dataset": Flag(convert=_val_dataset, hint="dataset.val_path=SOURCE"),
    "split_dataset_ratio": Flag(key="dataset.split_ratio"),
    "truncation_strategy": Flag(convert=_truncation, hint="dataset.truncation=right|delete|error"),
    "lazy_tokenize": Flag(key="dataset.lazy_tokenize"),
    # --- processes
    "deepspeed": Flag(convert=_deepspeed, hint="distributed=zero2|zero3|zero3_offload"),
    "fsdp": Flag(
        convert=_choice(
            "--fsdp",
            {"fsdp2": ["distributed=fsdp"], "full_shard": ["distributed=fsdp"]},
            "; rlhf_lab writes the FSDP2 settings from distributed.*",
        ),
        hint="distributed=fsdp",
    ),
    # --- outputs
    "output_dir": Flag(
        convert=lambda v: [f"hydra.run.dir={_one(v, '--output_dir')}/{RUN_NAME}"],
        hint="hydra.run.dir=DIR (hydra.sweep.dir=DIR with -m)",
    ),
    "report_to": Flag(convert=_report_to, hint="logger=wandb|tensorboard|none"),
    "add_version": Flag(
        convert=lambda v: [] if _one(v, "--add_version") == "true" else ["--no-version"],
        hint="hydra.run.dir=DIR (a run of its own), or a time-stamped name as by default",
    ),
}

# Environment variables of a swift command line: the launcher's (distributed.*) and Qwen-VL's image size.
ENV_FLAGS = {
    "NPROC_PER_NODE": "distributed.nproc_per_node",
    "NNODES": "distributed.nnodes",
    "NODE_RANK": "distributed.node_rank",
    "MASTER_ADDR": "distributed.master_addr",
    "MASTER_PORT": "distributed.master_port",
    "MAX_PIXELS": "model.max_pixels",
    "MIN_PIXELS": "model.min_pixels",
}
# Environment variables that keep their meaning under rlhf_lab (passed through in front of the command).
KEPT_ENV = (
    "CUDA_VISIBLE_DEVICES",
    "PYTORCH_CUDA_ALLOC_CONF",
    "WANDB_API_KEY",
    "WANDB_PROJECT",
    "WANDB_MODE",
    "HF_ENDPOINT",
    "HF_HOME",
    "HF_HUB_OFFLINE",
)


def pointer(name: str) -> str | None:
    """What rlhf_lab takes instead of the ms-swift or TRL setting `name`, for a hint; None when it is not one."""
    flag = FLAGS.get(name)
    return flag.pointer() if flag else None


def check_foreign_flags(flags: list[str]) -> None:
    """A `--flag` that is not Hydra's: an ms-swift (or argparse) habit. Say how rlhf_lab spells it."""
    for arg in flags:
        if not arg.startswith("-") or arg in HYDRA_FLAGS or arg.split("=")[0] in HYDRA_FLAGS:
            continue
        name = arg.lstrip("-").split("=")[0]
        if not arg.startswith("--"):
            continue  # a value of a flag (e.g. a negative number) or Hydra's own short flags
        where = pointer(name)
        instead = (
            f"; rlhf_lab writes it as {where}"
            if where and (FLAGS[name].key or FLAGS[name].convert)
            else (f" ({where})" if where else "")
        )
        raise ConfigError(
            None,
            f"{arg} is not a flag of rlhf_lab, which takes key=value overrides{instead}; to "
            "translate a whole swift rlhf command line run: python -m rlhf_lab from-swift <the "
            "command>",
        )
