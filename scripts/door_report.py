"""Bad input, tried as users (and attackers) would: each case is a command line with what it must do, run for real
in a process of its own, and the table says whether it behaved: the exit code, whether it printed exactly one line
and no traceback, whether it stopped before the model loaded, and how long it took.

    python scripts/door_report.py                 # every case; writes outputs/door_report/report.md and .json
    python scripts/door_report.py --only seed     # the cases whose name contains 'seed'

A case "behaves" when its exit code is the expected one and, for an expected 2, stderr holds exactly one line,
no traceback, and no model was loaded ('model loaded' not in the log).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY = ["debug=smoke", "train.eval=false"]
LONG = "/tmp/" + "a" * 5000
STALE = {"WORLD_SIZE": "2", "LOCAL_RANK": "0", "RANK": "0", "MASTER_ADDR": "10.255.255.1", "MASTER_PORT": "29999"}


@dataclass
class Case:
    name: str
    args: list[str]
    code: int = 2  # what it must exit with
    env: dict = field(default_factory=dict)
    timeout: int = 300
    cwd: Path = ROOT


def cases(work: Path) -> list[Case]:
    dry = ["--cfg", "job"]
    blocker = work / "a-file"
    blocker.write_text("")
    (work / "rm_demo").mkdir()  # a run folder whose model is not saved yet
    return [
        # values that used to pass the door (checked with the config)
        Case("beta=inf", [*TINY, "algorithm.beta=inf", *dry]),
        Case("max_grad_norm=nan", [*TINY, "train.max_grad_norm=nan", *dry]),
        Case("learning_rate=nan", [*TINY, "train.learning_rate=nan", *dry]),
        Case("warmup_ratio=2", [*TINY, "train.warmup_ratio=2", *dry]),
        Case("+typo key", [*TINY, "+algorithm.betta=0.2", *dry]),
        Case("++typo key", [*TINY, "++algorithm.betta=0.2", *dry]),
        Case("+anything", [*TINY, "+anything=1", *dry]),
        Case("tuner.name=full", [*TINY, "tuner.name=full", *dry]),
        Case("algorithm.name=kto", [*TINY, "algorithm.name=kto", *dry]),
        Case("distributed.backend=ddp", [*TINY, "distributed.backend=ddp", *dry]),
        Case("logger.backend=wandb", [*TINY, "logger.backend=wandb", *dry]),
        Case("seed=-1", [*TINY, "train.seed=-1", *dry]),
        Case("dataset_num_proc=-2", [*TINY, "train.dataset_num_proc=-2", *dry]),
        Case("flash_attention_2 absent", [*TINY, "model.attn_implementation=flash_attention_2", *dry]),
        Case("ddp one process", [*TINY, "distributed=ddp", "distributed.nproc_per_node=1", *dry]),
        Case("override without key", [*TINY, "=0.2", *dry]),
        Case("5000-char data path", [*TINY, f"dataset.path={LONG}", *dry]),
        Case("5000-char model path", [*TINY, f"model.name_or_path={LONG}", *dry]),
        Case("5000-char run dir", [*TINY, f"hydra.run.dir={LONG}"]),
        Case("a device as data", [*TINY, "dataset.path=/dev/zero", *dry]),
        Case("objective that is no summary value", [*TINY, "objective=foo", *dry]),
        Case("revision on a built-in model", [*TINY, "model.revision=v1", *dry]),
        Case("missing local model path", [*TINY, "model=custom", "model.name_or_path=rm_demo/model", *dry], cwd=work),
        Case("empty run dir", [*TINY, "hydra.run.dir="]),
        Case("WANDB_MODE=bogus", [*TINY, "logger=wandb"], env={"WANDB_MODE": "bogus"}),
        Case("stale launcher, --cfg job", ["--cfg", "job"], env=STALE, timeout=30),
        Case("stale launcher, --help", ["--help"], code=0, env=STALE, timeout=30),
        Case("sweep with one bad job", ["-m", *TINY, "algorithm.beta=0.1,-1", f"hydra.sweep.dir={work}/sweep"]),
        # values only the model or data can refute: checked after the tokenizer, before the weights load
        Case("max_length=4", [*TINY, "train.max_length=4", f"hydra.run.dir={work}/r1"]),
        Case("target_modules=[nope_proj]", [*TINY, "tuner.target_modules=[nope_proj]", f"hydra.run.dir={work}/r2"]),
        Case("min_pixels on a text model", [*TINY, "model.min_pixels=100", f"hydra.run.dir={work}/r3"]),
        Case("freeze_vit on a text model", [*TINY, "tuner.freeze_vit=false", f"hydra.run.dir={work}/r4"]),
        Case("unwritable cache", [*TINY, f"hydra.run.dir={work}/r5"], env={"RLHF_LAB_CACHE": str(blocker)}),
        # what must now work
        Case(
            "zero2 with one process",
            [*TINY, "distributed=zero2", "distributed.nproc_per_node=1", f"hydra.run.dir={work}/r6"],
            code=0,
        ),
    ]


def run(case: Case) -> dict:
    env = {**os.environ, "WANDB_SILENT": "true", **case.env}
    start = time.time()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "rlhf_lab", *case.args],
            cwd=case.cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=case.timeout,
        )
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired:
        code, out, err = "timeout", "", ""
    seconds = round(time.time() - start, 2)
    lines = [line for line in err.splitlines() if line.strip() and "[rlhf_lab]" not in line and "[HYDRA]" not in line]
    loaded = "model loaded" in out + err
    one_line = len(lines) == 1 and "Traceback" not in err
    behaves = code == case.code and (case.code != 2 or (one_line and not loaded))
    return {
        "case": case.name,
        "expected": case.code,
        "exit": code,
        "one line": one_line,
        "model loaded": loaded,
        "seconds": seconds,
        "behaves": behaves,
        "line": (lines[-1] if lines else "")[:160],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run the cases whose name contains this text")
    parser.add_argument("--out", default=str(ROOT / "outputs" / "door_report"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for case in cases(Path(tmp)):
            if args.only in case.name:
                rows.append(run(case))
                print(f"{rows[-1]['case']}: {'ok' if rows[-1]['behaves'] else 'NO'} ({rows[-1]['seconds']} s)")
    columns = ["case", "expected", "exit", "one line", "model loaded", "seconds", "behaves", "line"]
    table = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    table += ["| " + " | ".join(str(r[c]).replace("|", "\\|") for c in columns) + " |" for r in rows]
    good = sum(r["behaves"] for r in rows)
    text = "\n".join([*table, "", f"{good} of {len(rows)} cases behave"]) + "\n"
    (out / "report.md").write_text(text)
    (out / "report.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"{good} of {len(rows)} cases behave; table in {out / 'report.md'}")
    return 0 if good == len(rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
