"""scripts/bench.py in its short mode: both sides run, and the table's figures are consistent (no speed asserted)."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow


def test_bench_short_mode_measures_both_sides(tmp_path, tiny_model_dir):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--short", "--steps", "2", "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["settings"]["steps"] == 2 and report["settings"]["lora_r"] == 8
    assert set(report["results"]) == {"dpo", "kto", "grpo"}
    for algorithm, sides in report["results"].items():
        for side in ("rlhf_lab", "plain_trl"):
            r = sides[side]
            assert r["samples_per_s"] > 0 and r["tokens_per_s"] > 0, (algorithm, side, r)
            assert 0 < r["train_start_at_s"] < r["first_step_at_s"] < 600 and r["peak_rss_mb"] > 100
            # one interval between the two steps: samples/s is the batch over the seconds per step
            assert abs(r["samples_per_s"] * r["seconds_per_step"] - 4) < 0.01
        ratio = sides["ratio"]["samples_per_s"]
        assert abs(ratio - sides["rlhf_lab"]["samples_per_s"] / sides["plain_trl"]["samples_per_s"]) < 0.01
    assert "| dpo | rlhf_lab / TRL |" in proc.stdout
