"""scripts/gpu_check.py in its CPU form: the families train and save, the benchmark measures both sides, and the JSON
holds the figures a GPU run would report."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT


def test_gpu_check_runs_on_a_cpu_in_its_short_form(tmp_path, tiny_model_dir):
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "gpu_check.py"),
            "--cpu",
            "--families",
            "dpo,grpo,ppo",
            "--bench",
            "dpo",
            "--out",
            str(out),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["device"] == "cpu"
    for name in ("dpo", "grpo", "ppo"):
        family = report["families"][name]
        assert family["ok"] and family["saved"] and len(family["losses"]) == 2
        assert family["memory_plan"]["estimate_mb"] > 0
    bench = report["benchmark"]["dpo"]
    assert bench["rlhf_lab"]["tokens_per_s"] > 0 and bench["plain_trl"]["tokens_per_s"] > 0
    assert bench["rlhf_lab"]["memory_plan"]["measured_mb"] > 0
    assert bench["rlhf_lab"]["mfu"] is None  # no GPU peak to compare with on a CPU


def test_gpu_check_without_a_gpu_asks_for_the_cpu_form(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_check.py")], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 2 and "run with --cpu" in proc.stderr
