"""from-swift: ms-swift command lines become rlhf_lab commands that pass the dry run."""

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rlhf_lab.cli.swift.flags import FLAGS
from rlhf_lab.cli.swift.translate import translate, words_of

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "rlhf_lab" / "demo_data"


def readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("## Coming from ms-swift", 1)[1].split("\n## ", 1)[0]


def readme_examples() -> list[str]:
    return [
        line
        for line in readme_section().splitlines()
        if "swift rlhf --rlhf_type" in line and not line.startswith("python")
    ]


def test_readme_has_an_example_for_every_rlhf_type_multimodal_and_deepspeed():
    types = {re.search(r"--rlhf_type (\w+)", line).group(1) for line in readme_examples()}
    assert types == {"dpo", "kto", "cpo", "simpo", "orpo", "rm", "ppo", "grpo", "gkd"}
    assert any("--deepspeed zero3" in line for line in readme_examples())
    assert any("VL" in line for line in readme_examples())


def test_readme_names_every_flag_the_translation_knows():
    section = readme_section()
    missing = [
        name
        for name in FLAGS
        if f"--{name}" not in section
        and name
        not in (
            "model_name_or_path",
            "dataset_name",
            "use_peft",
            "lora_r",
            "lora_target_modules",
            "tuner_type",
            "bf16",
            "precompute_ref_log_probs",
            "freeze_llm",
            "ref_adapters",
            "reward_adapters",
            "teacher_adapters",
            "ref_model_type",
            "reward_model_type",
            "reward_model_plugin",
            "teacher_model_type",
            "offload_teacher_model",
            "top_entropy_quantile",
            "log_entropy",
            "num_generations_eval",
            "num_sample_generations",
            "loss_scale",
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
            "completion_length_limit_scope",
            "stop_words",
            "agent_template",
            "vllm_server_pass_dataset",
            "deepspeed_autotp_size",
            "freeze_parameters",
            "padding_side",
            "streaming",
            "dataset_shuffle",
            "metric_for_best_model",
            "create_checkpoint_symlink",
            "save_strategy",
            "gradient_checkpointing_kwargs",
            "dataloader_drop_last",
            "ddp_timeout",
            "add_version",
        )
    ]
    # The README groups the rest ("the *_adapters flags", "vLLM's tensor-parallel, sleep and offload flags").
    assert missing == [], missing


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """The files the README's examples name, from the bundled demo data; and hub models taken as present (whether
    the Hub has them is not what these tests check, and there may be no network)."""
    data = tmp_path / "data"
    data.mkdir()
    for name, demo in {"pairs": "arith_pairs", "kto": "arith_kto", "chat": "arith_chat", "math": "arith_math"}.items():
        shutil.copy(DEMO / demo / "train.jsonl", data / f"{name}.jsonl")
    shutil.copy(DEMO / "shapes" / "train.jsonl", data / "mm_pairs.jsonl")
    shutil.copytree(DEMO / "shapes" / "images", data / "images")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("rlhf_lab.runtime.reachability.check_hub_model", lambda *a, **k: None)
    monkeypatch.setattr("rlhf_lab.runtime.reachability.unreachable", lambda *a, **k: None)
    for var in ("NPROC_PER_NODE", "NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", "WANDB_MODE"):
        monkeypatch.delenv(var, raising=False)
    return data


@pytest.mark.parametrize("line", readme_examples(), ids=lambda line: re.search(r"--rlhf_type (\w+)", line).group(1))
def test_every_readme_example_translates_into_a_run_that_passes_the_dry_run(data_dir, line):
    from rlhf_lab.cli.main import register_start_resolver
    from rlhf_lab.cli.preflight import check
    from rlhf_lab.config import register_schemas

    register_schemas()
    register_start_resolver()
    result = translate(words_of([line]))
    # Every flag of the example is accounted for: mapped, not needed, or refused with a reason.
    given = [w for w in shlex.split(line) if w.startswith("--")]
    accounted = [g for g, _ in result.mapped + result.unneeded + result.refused]
    assert all(any(g.startswith(flag + " ") or g == flag for g in accounted) for flag in given)
    assert [g for g, _ in result.refused] == [g for g in accounted if g.startswith("--eval_steps")]
    words = shlex.split(result.command())
    overrides = words[words.index("rlhf_lab") + 1 :]
    import importlib.util

    if "model.attn_implementation=flash_attention_2" in overrides and importlib.util.find_spec("flash_attn") is None:
        # A GPU recipe: here, without the kernel's package, the dry run says so instead of failing once loaded.
        from rlhf_lab.errors import ConfigError

        with pytest.raises(ConfigError, match="flash_attention_2 needs the flash_attn package"):
            check(overrides, read_data=True)
        overrides = [o.replace("flash_attention_2", "sdpa") for o in overrides]
    checked = check(overrides, read_data=True)
    assert checked.train_rows > 0


def test_a_translation_maps_each_flag():
    result = translate(
        words_of(
            [
                "NPROC_PER_NODE=2 CUDA_VISIBLE_DEVICES=0,1 swift rlhf --rlhf_type kto "
                "--model Qwen/Qwen3-8B --dataset 'hub/a:sub#100' hub/b:sub --lora_rank 16 "
                "--deepspeed zero2_offload --report_to wandb --rpo_alpha 0.1 --output_dir out "
                "--add_version false --target_modules q_proj v_proj --eval_steps 10"
            ]
        )
    )
    assert result.overrides == [
        "distributed.nproc_per_node=2",
        "algorithm=kto",
        "model=qwen3_8b",
        "dataset=custom",
        'dataset.path=["hub/a#100",hub/b]',
        "dataset.subset=sub",
        "tuner.r=16",
        "distributed=zero2",
        "distributed.offload_optimizer=cpu",
        "logger=wandb",
        "hydra.run.dir=out",
        "tuner.target_modules=[q_proj,v_proj]",
    ]
    assert result.env == ["CUDA_VISIBLE_DEVICES=0,1"]
    refused = dict(result.refused)
    assert refused["--rpo_alpha 0.1"] == "not a setting of algorithm=kto"
    assert refused["--eval_steps 10"].startswith("rlhf_lab evaluates on the held-out rows before and after training")
    assert result.notes[0].startswith("ms-swift reads Qwen/Qwen3-8B, hub/a, hub/b from ModelScope")


def test_a_script_with_shell_variables_translates(tmp_path):
    script = tmp_path / "kto.sh"
    script.write_text(
        "# KTO\nnproc_per_node=2\n\nCUDA_VISIBLE_DEVICES=0,1 \\\nNPROC_PER_NODE=$nproc_per_node \\\n"
        "swift rlhf \\\n    --rlhf_type kto \\\n    --gradient_accumulation_steps $(expr 16 / $nproc_per_node) \\\n"
        "    --model Qwen/Qwen2.5-7B-Instruct\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "rlhf_lab", "from-swift", str(script)], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        "CUDA_VISIBLE_DEVICES=0,1 python -m rlhf_lab distributed.nproc_per_node=2 algorithm=kto "
        "train.gradient_accumulation_steps=8 model=custom "
        "model.name_or_path=Qwen/Qwen2.5-7B-Instruct distributed=ddp"
    )
    assert "--rlhf_type kto  ->  algorithm=kto" in proc.stderr


def test_without_a_command_it_says_how_to_use_it(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rlhf_lab", "from-swift", "hello"], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 2 and proc.stderr.startswith("config error: no swift rlhf flags found")
