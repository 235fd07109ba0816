"""Data-scale benchmark: how long a large preference file takes to load, validate and reach its first training step.

    python scripts/bench_data.py                               # 100k and 1M DPO rows, model=tiny
    python scripts/bench_data.py --rows 100000 --out data.json
    python scripts/bench_data.py --checkout /path/to/other/checkout --timeout 600   # another version, same files

Each size gets a deterministic file of ms-swift DPO rows (messages + rejected_response, about 350 bytes a row, as
the 342 MB million-row file of the measurements), written once into --work. Each run is one process:
`python -m rlhf_lab model=tiny dataset=custom dataset.path=FILE train.max_steps=1`, without held-out evaluation.
Reported: the seconds to read, convert and check every row (summary.json's data_seconds, which includes loading
the tokenizer, about 3 s here) and the rows per second
that makes, the seconds from process start to the end of the first optimizer step, the wall time, and the peak
RSS of the whole process. A run past --timeout is stopped and reported as such (what it reached by then is shown).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_rows(path: Path, n: int) -> Path:
    if path.exists():
        return path
    rng = random.Random(0)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as f:
        for i in range(n):
            a, b = rng.randint(10, 999), rng.randint(10, 999)
            row = {
                "messages": [
                    {"role": "system", "content": "Answer with the result, showing the operation."},
                    {"role": "user", "content": f"Question {i}: what is {a} + {b}? Please answer carefully."},
                    {"role": "assistant", "content": f"{a} + {b} = {a + b}. The sum of the two numbers is {a + b}."},
                ],
                "rejected_response": f"{a} + {b} = {a + b + rng.randint(1, 9)}. The sum is not obvious.",
                "solution": str(a + b),
            }
            f.write(json.dumps(row) + "\n")
    tmp.rename(path)
    return path


def run_one(data: Path, run_dir: Path, checkout: Path, timeout: float) -> dict:
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(checkout)}
    cmd = [
        sys.executable,
        "-m",
        "rlhf_lab",
        "model=tiny",
        "dataset=custom",
        f"dataset.path={data}",
        "train.max_steps=1",
        "train.eval=false",
        "train.save_steps=0",
        f"hydra.run.dir={run_dir}",
    ]
    start = time.time()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            cmd, cwd=checkout, env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
        )
        timed_out = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.time() - start > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                _, status, usage = os.wait4(proc.pid, 0)
                timed_out = True
                break
            time.sleep(0.2)
        err.seek(0)
        stderr = err.read()
    wall = time.time() - start
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    rows = summary.get("train_rows")
    data_s = summary.get("data_seconds")
    return {
        "status": "timed out" if timed_out else summary.get("status", f"exit {os.waitstatus_to_exitcode(status)}"),
        "rows": rows,
        "data_seconds": data_s,
        "rows_per_second": round(rows / data_s) if rows and data_s else None,
        "first_step_at_s": summary.get("first_step_at_s"),
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "last_log_line": next((line for line in reversed(stderr.splitlines()) if "[rlhf_lab]" in line), "")[-200:],
        "error_tail": "" if summary.get("status") == "completed" else stderr[-1500:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--work", type=Path, default=ROOT / "outputs" / "bench_data", help="data files and run dirs")
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the rlhf_lab checkout to run (default: this one)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds before a run is stopped")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    args = parser.parse_args()
    if not (args.checkout / "rlhf_lab" / "__main__.py").is_file():
        print(f"error: --checkout {args.checkout} is not an rlhf_lab checkout", file=sys.stderr)
        raise SystemExit(2)
    args.work.mkdir(parents=True, exist_ok=True)
    results = []
    for n in args.rows:
        data = write_rows(args.work / f"dpo_{n}.jsonl", n)
        run_dir = Path(tempfile.mkdtemp(prefix=f"run_{n}_", dir=args.work))
        result = {
            "rows_in_file": n,
            "file_mb": round(data.stat().st_size / 2**20),
            "checkout": str(args.checkout),
            **run_one(data, run_dir, args.checkout.resolve(), args.timeout),
        }
        results.append(result)
        print(json.dumps({k: v for k, v in result.items() if k != "error_tail"}), flush=True)
        if result["error_tail"] and result["status"] != "timed out":
            print(result["error_tail"], file=sys.stderr)
    print("\n| rows | file | status | read + check | rows/s | first step done | wall | peak RSS |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['rows_in_file']:,} | {r['file_mb']} MB | {r['status']} | {r['data_seconds']} s | "
            f"{r['rows_per_second'] or '-'} | {r['first_step_at_s']} s | {r['wall_s']} s | {r['peak_rss_mb']} MB |"
        )
    if args.out:
        from rlhf_lab.paths import write_json_atomic

        write_json_atomic(args.out, results)


if __name__ == "__main__":
    main()
