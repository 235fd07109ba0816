"""Does every algorithm learn? Runs the recipes in conf/experiment/ (all of them, or the ones named), one at a time,
and writes a table of each one's held-out metric before and after training, seconds per step and wall time, as
Markdown and JSON.

    python scripts/learning_report.py                          # every <algorithm>_demo recipe, seed 42
    python scripts/learning_report.py kto_demo rm_demo ppo_demo --seeds 42 2
    python scripts/learning_report.py dpo_demo --set model=tiny --set train.max_steps=2   # keys for every run

Each run gets its own directory, <out>/runs/<recipe>-seed<seed>; a run whose summary.json there says completed is
read again, not rerun, so a report interrupted or stopped halfway goes on where it was. The table is rewritten
after every run and covers every run in <out>/runs, so reports of a few recipes at a time add up to one table
(delete a run's folder to run it again).

With several seeds, the table gives each seed's change and the noise: the spread (largest minus smallest) of the
after-training metric across seeds; a row is "learned" when every seed moved its metric the right way and the
smallest change is larger than that spread. ppo_demo reads the reward model that rm_demo trained in the same
report folder with the default seed (42), as a plain `experiment=rm_demo` then `experiment=ppo_demo` would: its
seeds then measure PPO's own noise (rm_demo's row has the reward model's).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rlhf_lab.algorithms.registry import get_spec  # noqa: E402
from rlhf_lab.config.train import TrainConfig  # noqa: E402

# Recipes that read another recipe's output: recipe -> (the recipe it needs, the key that points at it, the file
# in that run's directory).
NEEDS = {"ppo_demo": ("rm_demo", "algorithm.reward_model", "model")}


def all_recipes() -> list[str]:
    names = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*_demo.yaml"))
    # A recipe runs after the ones it needs.
    for name, (needed, _, _) in NEEDS.items():
        if name in names and needed in names:
            names.remove(name)
            names.insert(names.index(needed) + 1, name)
    return names


def held_out(summary: dict) -> tuple[str, float | None, float | None, bool]:
    """The metric a run is judged by (from the registry), its value before and after, and whether lower is better."""
    spec = get_spec(summary["algorithm"])
    before, after = summary.get("eval_before") or {}, summary.get("eval_after") or {}
    for key in spec.held_out_metric:
        if before.get(key) is not None and after.get(key) is not None:
            return key, before[key], after[key], spec.lower_is_better
    return spec.held_out_metric[0], None, None, spec.lower_is_better


def run_one(recipe: str, seed: int, run_dir: Path, extra: list[str], walls: dict) -> str | None:
    """Trains the recipe into run_dir unless a completed run is there already; the failure's text, if it fails."""
    summary_path = run_dir / "summary.json"
    if summary_path.exists() and json.loads(summary_path.read_text()).get("status") == "completed":
        return None
    command = [sys.executable, "-m", "rlhf_lab", f"experiment={recipe}", f"train.seed={seed}"]
    command += [*extra, f"hydra.run.dir={run_dir}"]
    print("$", " ".join(command[1:]), flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT)
    wall = round(time.perf_counter() - start, 1)
    if done.returncode != 0 or not summary_path.exists():
        return f"failed (exit {done.returncode})"
    # Keyed by the run's start time as well: a folder deleted and run again must not inherit the old figure.
    walls[run_dir.name] = {"started_at": json.loads(summary_path.read_text())["started_at"], "wall_s": wall}
    return None


def wall_time(summary: dict, recorded: dict | None) -> float:
    """The command's wall time where this report ran the run, else the run's own duration (no process start-up)."""
    if isinstance(recorded, dict) and recorded.get("started_at") == summary.get("started_at"):
        return recorded["wall_s"]
    return round(summary.get("duration_s", 0.0), 1)


def seed_of(run_dir: Path) -> int:
    """The seed in a run folder's name, <recipe>-seed<seed>."""
    return int(run_dir.name.rpartition("-seed")[2])


def read_run(recipe: str, run_dir: Path, walls: dict) -> dict:
    """One run's row, from its summary.json."""
    seed = seed_of(run_dir)
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    if summary.get("status") != "completed":
        status = summary.get("status", "no summary.json")
        return {"recipe": recipe, "seed": seed, "status": status, "run_dir": str(run_dir)}
    metric, before, after, lower = held_out(summary)
    change = None if before is None else after - before
    return {
        "recipe": recipe,
        "seed": seed,
        "status": summary["status"],
        "algorithm": summary["algorithm"],
        "metric": metric,
        "lower_is_better": lower,
        "before": before,
        "after": after,
        "change": change,
        "steps": summary.get("global_steps"),
        "seconds_per_step": summary.get("seconds_per_step"),
        "wall_s": wall_time(summary, walls.get(run_dir.name)),
        "run_dir": str(run_dir),
    }


def collect(out: Path, recipes: list[str], walls: dict) -> list[dict]:
    """One row per recipe that has runs in out/runs (every seed found there), in the order given."""
    rows = []
    for recipe in recipes:
        dirs = sorted((out / "runs").glob(f"{recipe}-seed*"), key=seed_of)
        if dirs:
            rows.append(verdict([read_run(recipe, d, walls) for d in dirs]))
    return rows


def verdict(runs: list[dict]) -> dict:
    """One row per recipe: its seeds' changes, their noise and whether it learned."""
    done = [r for r in runs if r.get("change") is not None]
    row = {"recipe": runs[0]["recipe"], "seeds": [r["seed"] for r in runs], "runs": runs}
    if not done:
        return {**row, "learned": False, "noise": None}
    afters = [r["after"] for r in done]
    noise = max(afters) - min(afters) if len(done) > 1 else None
    gains = [-r["change"] if r["lower_is_better"] else r["change"] for r in done]
    learned = len(done) == len(runs) and all(g > 0 for g in gains) and (noise is None or min(gains) > noise)
    return {**row, "learned": learned, "noise": noise, "smallest_gain": min(gains)}


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(rows: list[dict]) -> str:
    lines = [
        "| recipe | algorithm | held-out metric | before -> after (per seed) | noise | learned | s/step | wall |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        runs = row["runs"]
        first = runs[0]
        if "metric" not in first:
            lines.append(f"| {row['recipe']} | | | {first['status']} | | no | | |")
            continue
        better = "lower" if first["lower_is_better"] else "higher"
        moves = "; ".join(f"{fmt(r.get('before'))} -> {fmt(r.get('after'))} (seed {r['seed']})" for r in runs)
        sps = "/".join(fmt(r.get("seconds_per_step"), 2) for r in runs)
        wall = "/".join(f"{r['wall_s'] / 60:.1f} min" for r in runs if "wall_s" in r)
        noise = "one seed" if row["noise"] is None else fmt(row["noise"])
        learned = "yes" if row["learned"] else "no"
        lines.append(
            f"| {row['recipe']} | {first['algorithm']} | {first['metric']} ({better} is better) | {moves} | {noise}"
            f" | {learned} | {sps} | {wall} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipes", nargs="*", help="recipes to run (default: every *_demo in conf/experiment/)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42], help="train.seed of each run (default 42)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an override for every run")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "learning_report", help="report folder")
    args = parser.parse_args(argv)

    known = all_recipes()
    recipes = args.recipes or known
    unknown = [r for r in recipes if r not in known]
    if unknown:
        print(f"error: no recipe {', '.join(unknown)} in conf/experiment/; known: {', '.join(known)}", file=sys.stderr)
        return 2
    out = args.out.resolve()
    try:
        (out / "runs").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"error: --out {args.out}: cannot create the report folder ({e.strerror}); pick another", file=sys.stderr)
        return 2
    walls_path = out / "walls.json"
    walls = json.loads(walls_path.read_text()) if walls_path.exists() else {}
    for recipe in recipes:
        for seed in args.seeds:
            extra = list(args.set)
            if recipe in NEEDS:
                needed, key, file = NEEDS[recipe]
                # Every seed of a recipe reads the one a user's plain run would train (the default seed), so that
                # its spread is its own noise, not its input's; the input's seeds are its own row.
                candidates = [out / "runs" / f"{needed}-seed{s}" / file for s in (TrainConfig.seed, seed, *args.seeds)]
                found = next((c for c in candidates if c.exists()), None)
                if found is not None and not any(item.startswith(f"{key}=") for item in extra):
                    extra.append(f"{key}={found}")
                elif found is None:
                    print(f"{recipe}: no {needed} run in {out / 'runs'}; {key} keeps the recipe's value", flush=True)
            failure = run_one(recipe, seed, out / "runs" / f"{recipe}-seed{seed}", extra, walls)
            if failure:
                print(f"{recipe} seed {seed}: {failure}", file=sys.stderr)
            walls_path.write_text(json.dumps(walls, indent=2) + "\n")
            # The table covers every recipe with runs in this folder, from this call or earlier ones.
            rows = collect(out, known, walls)
            (out / "learning_report.json").write_text(json.dumps(rows, indent=2) + "\n")
            (out / "learning_report.md").write_text(markdown(rows))
    print(markdown(rows))
    print(f"written: {out / 'learning_report.md'} and {out / 'learning_report.json'}")
    named = [r for r in rows if r["recipe"] in recipes]
    return 0 if all(r["learned"] for r in named) else 1


if __name__ == "__main__":
    sys.exit(main())
