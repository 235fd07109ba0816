"""DPO end to end through the CLI on the tiny model: outputs, metrics, saved model, trackers."""

import json
import math

import pytest
import torch
from conftest import TINY, read_summary, run_cli

from rlhf_lab.paths import cache_dir


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("lora")
    proc = run_cli([*TINY, "logger=tensorboard", f"hydra.run.dir={tmp}/run"], cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp / "run", proc


def test_summary_records_a_completed_run(lora_run):
    run_dir, proc = lora_run
    s = read_summary(run_dir)
    assert s["status"] == "completed" and s["algorithm"] == "dpo" and s["tuner"] == "lora"
    assert s["global_steps"] == 2
    assert math.isfinite(s["train_loss"]) and 0 < s["train_loss"] < 5
    for phase in ("eval_before", "eval_after"):
        assert set(s[phase]) == {"accuracy", "reward_margin", "logp_margin", "logp_chosen", "logp_rejected"}
        assert 0 <= s[phase]["accuracy"] <= 1
    assert s["eval_before"]["reward_margin"] == 0.0  # the policy is its own reference before training
    assert s["eval_after"]["logp_chosen"] != s["eval_before"]["logp_chosen"]  # training changed the model
    assert s["duration_s"] > 0 and s["seconds_per_step"] > 0
    assert "held-out evaluation" in proc.stdout and "accuracy" in proc.stdout


def test_resolved_config_and_metrics_are_written(lora_run):
    run_dir, _ = lora_run
    assert "beta: 0.1" in (run_dir / ".hydra" / "config.yaml").read_text()
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2]
    for r in steps:
        assert math.isfinite(r["loss"]) and "rewards/margins" in r and "rewards/accuracies" in r
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))


def test_saved_adapter_reloads_with_plain_peft(lora_run, tiny_model_dir):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir, _ = lora_run
    adapter = run_dir / "adapter"
    assert not list(run_dir.glob(".adapter.*"))  # no temp dir left behind
    saved = load_file(str(adapter / "adapter_model.safetensors"))
    lora_b = [v for k, v in saved.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # trained away from the zero init
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(adapter))
    loaded = {k: v for k, v in model.state_dict().items() if "lora_B" in k}
    assert len(loaded) == len(lora_b)
    tok = AutoTokenizer.from_pretrained(adapter)
    ids = tok("What is 2 + 2?", return_tensors="pt")
    with torch.no_grad():
        with_adapter = model(**ids).logits
        with model.disable_adapter():
            without = model(**ids).logits
    assert not torch.allclose(with_adapter, without)


def test_full_tuning_saves_a_plain_transformers_model(tmp_path, tiny_model_dir, train):
    from transformers import AutoModelForCausalLM

    # Through run_job, the command line's job without Hydra's run machinery.
    s = train([*TINY, "tuner=full", "train.learning_rate=1e-3", "train.eval=false"], tmp_path / "run")
    assert s == read_summary(tmp_path / "run")
    assert s["status"] == "completed" and s["eval_before"] is None and s["tuner"] == "full"
    trained = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "model")
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    diffs = [(a - b).abs().max().item() for a, b in zip(trained.parameters(), base.parameters())]
    assert max(diffs) > 0


def test_wandb_offline_run_gets_the_resolved_config(tmp_path):
    proc = run_cli(
        [
            *TINY,
            "logger=wandb",
            "logger.tags=[smoke]",
            "train.eval=false",
            "algorithm.beta=0.25",
            f"hydra.run.dir={tmp_path}/run",
        ],
        cwd=tmp_path,
        # No key anywhere (empty env var, a HOME without .netrc): offline. The model cache stays where it is.
        env={"WANDB_API_KEY": "", "HOME": str(tmp_path), "RLHF_LAB_CACHE": str(cache_dir())},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    # Offline runs keep the config inside the run's record file (uploaded by `wandb sync`).
    record = next(runs[0].glob("run-*.wandb")).read_bytes()
    assert b'"beta":0.25' in record and b'"name_or_path":"builtin:tiny-llama"' in record
    assert b"smoke" in record and b"dpo-tiny" in record  # tag and run name


def test_rpo_and_label_smoothing_train(tmp_path, train):
    s = train([*TINY, "algorithm.rpo_alpha=0.5", "algorithm.label_smoothing=0.1", "train.eval=false"], tmp_path / "run")
    assert s["status"] == "completed" and math.isfinite(s["train_loss"])


def test_a_checkpoint_dir_without_weights_is_a_one_line_model_error(tmp_path, tiny_model_dir):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    proc = run_cli([*TINY, f"model.name_or_path={broken}", f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"model error: cannot load {broken}:")
    assert not (tmp_path / "run").exists()  # found before the run began: no directory that looks like a run
