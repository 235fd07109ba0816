"""The GPU path checked in one command, and its figures in one JSON file.

    python scripts/gpu_check.py                  # on a CUDA machine: every family, then the benchmark
    python scripts/gpu_check.py --cpu            # the short form on a CPU (what the tests run)
    python scripts/gpu_check.py --prepare-wheels wheels/   # where there is a package index: the wheels that a
                                                           # machine with torch, transformers and peft still needs

(a) Each algorithm family trains two steps on the tiny model (bf16 on CUDA): the run must complete, its losses be
finite and its model or adapter be saved; its memory plan (estimate beside the measured peak) is recorded.
(b) DPO and GRPO on a randomly initialised model with Qwen3-0.6B's shape (the tiny model's shape with --cpu), through
rlhf_lab and through the same training written directly on TRL (scripts/plain_trl.py): tokens per second, model
FLOP utilisation against the GPU's bf16 peak, peak memory and the planner's estimate.
(c) Everything goes to --out (default outputs/gpu_check.json).

A machine without a package index installs the wheels with `pip install --no-index --find-links wheels/ ...`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import bench  # noqa: E402  - scripts/bench.py: the rlhf_lab and plain-TRL runs, measured the same way

# Each family on the tiny model: (its overrides).
FAMILIES = {
    "dpo": ["algorithm=dpo"],
    "kto": ["algorithm=kto"],
    "cpo": ["algorithm=cpo"],
    "rm": ["algorithm=rm"],
    "grpo": [
        "algorithm=grpo",
        "dataset=arith_math",
        "algorithm.num_generations=2",
        "algorithm.max_completion_length=8",
    ],
    "ppo": [
        "algorithm=ppo",
        "dataset=arith_math",
        "algorithm.reward_funcs=[accuracy]",
        "algorithm.max_completion_length=8",
    ],
    "gkd": ["algorithm=gkd", "algorithm.teacher_model=tiny", "dataset=arith_chat", "algorithm.max_completion_length=8"],
}
# Qwen3-0.6B's config.json fields (its published shape), for the benchmark's random model.
QWEN3_0_6B = dict(
    hidden_size=1024,
    intermediate_size=3072,
    num_hidden_layers=28,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=128,
    tie_word_embeddings=True,
)
# Packages rlhf_lab needs that the GPU machines lack (their torch, transformers, peft and accelerate are used).
WHEELS = (
    "trl",
    "hydra-core",
    "omegaconf",
    "antlr4-python3-runtime",
    "datasets",
    "math-verify",
    "latex2sympy2_extended",
)


def family_check(name: str, overrides: list[str], work: Path, cuda: bool) -> dict:
    run_dir = work / f"family-{name}"
    cmd = [
        sys.executable,
        "-m",
        "rlhf_lab",
        "debug=smoke",
        *overrides,
        "train.max_steps=2",
        "train.logging_steps=1",
        f"train.bf16={'true' if cuda else 'false'}",
        f"hydra.run.dir={run_dir}",
    ]
    started = time.time()
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    out = {"seconds": round(time.time() - started, 1), "exit_code": proc.returncode}
    if proc.returncode != 0:
        out["error"] = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {**out, "ok": False}
    summary = json.loads((run_dir / "summary.json").read_text())
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    saved = (run_dir / "adapter").is_dir() or (run_dir / "model").is_dir()
    finite = bool(losses) and all(math.isfinite(x) for x in losses)
    return {
        **out,
        "ok": summary["status"] == "completed" and finite and saved,
        "losses": losses,
        "saved": saved,
        "memory_plan": summary.get("memory_plan"),
    }


def random_model(work: Path, short: bool) -> str:
    """A randomly initialised model with a real architecture's shape and the bundled tokenizer."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tiny = bench.model_dir(True)
    if short:
        return tiny
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    config = AutoConfig.for_model("qwen3", vocab_size=len(tokenizer), **QWEN3_0_6B)
    folder = work / "qwen3-0.6b-shape"
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def peak_tflops() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name().lower()
    from rlhf_lab.planning.accelerators import ACCELERATORS

    return next((peak for key, (_, peak) in ACCELERATORS.items() if key.split("_")[0] in name), None)


def benchmark(model: str, work: Path, short: bool, cuda: bool, algorithms: list[str]) -> dict:
    params = _params(model)
    peak = peak_tflops()
    args = argparse.Namespace(short=short, steps=3 if short else 12, bf16=cuda)
    out = {"model": model, "parameters": params}
    env = dict(os.environ)
    for algorithm in algorithms:
        s = bench.settings(args, algorithm)
        lab = bench.lab_run(algorithm, model, s, work, env)
        plain = bench.plain_run(algorithm, model, s, work, env)
        summary_path = work / f"lab-{algorithm}" / "summary.json"
        if summary_path.exists():
            lab["memory_plan"] = json.loads(summary_path.read_text()).get("memory_plan")
        for side in (lab, plain):
            tokens = side.get("tokens_per_s")
            # LoRA: 2 FLOPs per parameter per token forward, 2 backward (no weight gradients for the frozen base).
            side["mfu"] = round(4 * params * tokens / (peak * 1e12), 4) if tokens and peak else None
        out[algorithm] = {"rlhf_lab": lab, "plain_trl": plain}
    return out


def _params(model: str) -> int:
    from rlhf_lab.planning.shape import Shape, read_config

    return Shape.from_config(read_config(model), model).params


def prepare_wheels(folder: Path) -> int:
    """Download the wheels (no dependencies beyond the listed ones) at the versions installed here, and put the
    built tiny model under folder/cache (it is built from SmolLM2's tokenizer, whose 94 MB package cannot travel):
    on the other machine, RLHF_LAB_CACHE=folder/cache finds it."""
    import shutil
    from importlib.metadata import version

    from rlhf_lab.models.tiny import ensure_tiny_llama

    folder.mkdir(parents=True, exist_ok=True)
    pins = [f"{name}=={version(name)}" for name in WHEELS]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", str(folder), *pins]
    code = subprocess.call(cmd)
    tiny = ensure_tiny_llama()
    shutil.copytree(tiny, folder / "cache" / "models" / tiny.name, dirs_exist_ok=True)
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1024**2
    print(f"{folder}: {size:.1f} MiB; there: pip install --no-index --find-links {folder} {' '.join(WHEELS)}; ")
    print(f"then RLHF_LAB_CACHE={folder}/cache python scripts/gpu_check.py")
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="the short form on a CPU (tiny model, a few steps)")
    parser.add_argument("--families", default=",".join(FAMILIES), help="families to check (default: all)")
    parser.add_argument("--bench", default="dpo,grpo", help="algorithms to benchmark ('' = none)")
    parser.add_argument("--out", default="outputs/gpu_check.json")
    parser.add_argument("--prepare-wheels", metavar="DIR", help="download the wheels a machine without an index needs")
    args = parser.parse_args()
    if args.prepare_wheels:
        return prepare_wheels(Path(args.prepare_wheels))
    import tempfile

    import torch

    cuda = torch.cuda.is_available() and not args.cpu
    if not cuda and not args.cpu:
        print("no CUDA device: run with --cpu for the short form", file=sys.stderr)
        return 2
    report = {"device": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__, "families": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in [f for f in args.families.split(",") if f]:
            if name not in FAMILIES:
                print(f"unknown family {name!r}; choose from {', '.join(FAMILIES)}", file=sys.stderr)
                return 2
            report["families"][name] = family_check(name, FAMILIES[name], work, cuda)
            print(f"{name}: {'ok' if report['families'][name]['ok'] else 'FAILED'}", flush=True)
        algorithms = [a for a in args.bench.split(",") if a]
        if algorithms:
            report["benchmark"] = benchmark(random_model(work, args.cpu), work, args.cpu, cuda, algorithms)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    ok = all(f["ok"] for f in report["families"].values())
    print(f"written: {out}; families {'all ok' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
