"""`python -m rlhf_lab --help`: usage, the options of each config group, and each key of the composed config with
its value and the description its schema field carries."""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rlhf_lab.config.fields import field_help
from rlhf_lab.config.root import GROUPS

WIDTH = 120
# Longer keys and values push their description onto the next line, so that one long key does not squeeze every
# other description of its group.
KEY_COLUMN_MAX = 40
VALUE_COLUMN_MAX = 12

USAGE = """\
rlhf_lab: RLHF experiments from one command (DPO and friends, GRPO, GKD, PPO on TRL, transformers, peft, DeepSpeed).

  python -m rlhf_lab                                    # DPO + LoRA on SmolLM2-135M-Instruct, bundled data
  python -m rlhf_lab model=tiny train.max_steps=2       # a smoke run on a tiny random model
  python -m rlhf_lab algorithm=grpo dataset=arith_math  # GRPO with accuracy + format rewards
  python -m rlhf_lab experiment=grpo_demo               # a whole recipe from conf/experiment/
  python -m rlhf_lab algorithm=gkd algorithm.teacher_model=PATH_OR_PRESET dataset=arith_chat   # distillation
  python -m rlhf_lab algorithm=ppo algorithm.reward_model=RM_DIR dataset=arith_pairs   # PPO against a reward model
  python -m rlhf_lab dataset=custom dataset.path=/data/pairs.jsonl
  python -m rlhf_lab model=qwen3_vl_8b dataset=custom dataset.path=/data/mm_pairs.jsonl   # rows with images
  python -m rlhf_lab -m algorithm.beta=0.05,0.1 algorithm.loss_type=sigmoid,ipo   # a sweep
  python -m rlhf_lab distributed=zero2 distributed.nproc_per_node=8   # 8 processes (DeepSpeed ZeRO-2)
  python -m rlhf_lab -m hydra/launcher=slurm hydra.launcher.partition=gpu algorithm.beta=0.05,0.1   # on SLURM
  python -m rlhf_lab hparams_search=dpo_beta                # an Optuna search over beta and learning rate
  python -m rlhf_lab hydra.run.dir=outputs/runs/a train.save_steps=50   # run it again to resume (train.resume=auto)
  python -m rlhf_lab plan model=qwen3_8b plan.gpu=h100    # memory per device and step time, before anything loads
  python -m rlhf_lab export run=RUN_DIR                 # the run's model as one checkpoint (LoRA merged in)
  python -m rlhf_lab infer model=RUN_DIR data=FILE      # its answers to a file of prompts (chat=true: talk)
  python -m rlhf_lab eval model=RUN_DIR                 # its held-out evaluation, before and after
  python -m rlhf_lab compare outputs/runs/*_dpo         # runs side by side: a table and their training curves
  python -m rlhf_lab serve-reward model=RM_RUN port=8000   # a reward model over HTTP (algorithm.reward_server)
  python -m rlhf_lab --cfg job                          # the composed config, without running
  python -m rlhf_lab --hydra-help                       # Hydra's own flags
"""


def render_help(conf_dir: str, overrides: list[str]) -> str:
    cfg, choices = _compose(conf_dir, overrides)
    # experiment: whole recipes (conf/experiment/), which choose options of the groups above and set values;
    # debug: settings that shrink any run (conf/debug/).
    groups = "\n".join(_options(conf_dir, g) for g in (*GROUPS, "experiment", "debug"))
    sections = "\n\n".join(_section(title, rows) for title, rows in _sections(cfg, choices).items())
    return (
        f"{USAGE}\nConfig groups (group=option):\n{groups}\n\n"
        "Config keys (set any with key=value; values are type-checked before anything loads; ??? = required):\n\n"
        f"{sections}\n"
    )


def _options(conf_dir: str, group: str) -> str:
    options = ", ".join(sorted(p.stem for p in (Path(conf_dir) / group).glob("*.yaml")))
    return textwrap.fill(
        options, WIDTH, initial_indent=f"  {group:<12} ", subsequent_indent=" " * 15, break_on_hyphens=False
    )


def _compose(conf_dir: str, overrides: list[str]):
    """The composed config (without the hydra node) and the option chosen for each group."""
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from rlhf_lab.config.store import register_schemas

    register_schemas()
    with initialize_config_dir(conf_dir, version_base="1.3", job_name="rlhf_lab"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    choices = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, choices


def _sections(cfg, choices: dict) -> dict[str, list[tuple[str, str, str]]]:
    """Rows by section: one per config group (titled with its option) and the train node, then the top-level keys."""
    sections: dict[str, list[tuple[str, str, str]]] = {}
    for row in _rows(cfg, ""):
        node, dot, _ = row[0].partition(".")
        title = (f"{node}={choices[node]}" if node in GROUPS else node) if dot else "top level"
        sections.setdefault(title, []).append(row)
    return sections


def _rows(node, prefix: str) -> Iterator[tuple[str, str, str]]:
    """(dotted key, value, description) of every leaf under node, descending into nested schemas."""
    from omegaconf import OmegaConf

    schema = OmegaConf.get_type(node)
    values = OmegaConf.to_container(node, resolve=False)
    for key in node:
        if _schema_of(node, key):
            yield from _rows(node[key], f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", _show(values[key]), field_help(schema, key) or ""


def _schema_of(node, key: str) -> type | None:
    """The schema dataclass typing node[key], when it is a config node (not a value)."""
    from omegaconf import OmegaConf

    kind = OmegaConf.get_type(node, key)
    return kind if kind is not None and dataclasses.is_dataclass(kind) else None


def _show(value: Any) -> str:
    """A value as it would be written on the command line (YAML flow style)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    return str(value) if value != "" else "''"


def _section(title: str, rows: list[tuple[str, str, str]]) -> str:
    key_width = min(max(len(k) for k, _, _ in rows), KEY_COLUMN_MAX)
    value_width = min(max(len(v) for _, v, _ in rows), VALUE_COLUMN_MAX)
    indent = " " * (2 + key_width + 2 + value_width + 2)
    lines = [f"{title}:"]
    for key, value, description in rows:
        wrapped = textwrap.wrap(description, WIDTH - len(indent), break_long_words=False, break_on_hyphens=False)
        head = f"  {key:<{key_width}}  {value:<{value_width}}  "
        if len(head) > len(indent):
            lines.append(head.rstrip())
            head = indent
        lines += [(head if i == 0 else indent) + text for i, text in enumerate(wrapped or [""])]
    return "\n".join(line.rstrip() for line in lines)
