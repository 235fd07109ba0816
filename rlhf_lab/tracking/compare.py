"""python -m rlhf_lab compare RUN_DIR... : one table of the runs' settings that differ and their results (Markdown and
CSV), and their training curves on shared axes (PNG). Arguments are run directories, sweep directories (every job)
or globs of either."""

from __future__ import annotations

import glob
import json
import time
from pathlib import Path
from typing import Any

from rlhf_lab.errors import ConfigError
from rlhf_lab.paths import csv_text, write_text_atomic
from rlhf_lab.runtime import fingerprint
from rlhf_lab.tracking.sweep import main_metric, result_columns

USAGE = """python -m rlhf_lab compare RUN_DIR [RUN_DIR ...] [out=DIR]

  RUN_DIR may be a run directory, a sweep directory (its jobs) or a glob ('outputs/runs/*_dpo')
  out=DIR   where compare.md, compare.csv and compare_curves.png go (default: outputs/compare/<time>/)"""

# Training curves drawn when a run logged them: the loss, then the algorithm's main signals.
CURVES = (
    "loss",
    "rewards/margins",
    "rewards/accuracies",
    "reward",
    "kl",
    "completions/mean_length",
    "grad_norm",
    "learning_rate",
)


def compare_command(args: list[str]) -> str:
    if "--help" in args or "-h" in args or not args:
        if not args:
            raise ConfigError(
                None, "compare needs run directories: compare RUN_DIR [RUN_DIR ...] (globs and sweeps too)"
            )
        return USAGE
    outs = [a.partition("=")[2] for a in args if a.startswith("out=")]
    runs = expand([a for a in args if not a.startswith("out=")])
    out = Path(outs[-1]).expanduser() if outs else Path("outputs") / "compare" / time.strftime("%Y-%m-%d_%H-%M-%S")
    rows, columns = table_rows(runs)
    out.mkdir(parents=True, exist_ok=True)
    markdown = write_tables(out, rows, columns)
    curves = plot_curves(out / "compare_curves.png", runs)
    lines = [markdown, f"{len(runs)} runs compared: {out / 'compare.md'}, {out / 'compare.csv'}"]
    if curves:
        lines.append(f"training curves: {curves}")
    return "\n".join(lines)


def expand(args: list[str]) -> list[Path]:
    """Run directories named by the arguments, in order, each once."""
    found: list[Path] = []
    for arg in args:
        matches = sorted(glob.glob(str(Path(arg).expanduser()))) or [arg]
        for match in map(Path, matches):
            if (match / "summary.json").exists():
                found.append(match)
            elif match.is_dir() and list(match.glob("*/summary.json")):
                found += sorted(p.parent for p in match.glob("*/summary.json"))
            else:
                raise ConfigError(
                    None,
                    f"compare: {match} is not a run directory (no summary.json) nor a sweep of runs; give run "
                    "directories, sweep directories or globs of them",
                )
    return list(dict.fromkeys(found))


def table_rows(runs: list[Path]) -> tuple[list[dict], list[str]]:
    """One row per run (its name, the settings that differ between the runs, status, results) and the columns."""
    settings = [fingerprint.read(run) or {} for run in runs]
    keys = list(dict.fromkeys(k for s in settings for k in s))
    differing = [k for k in keys if len({json.dumps(s.get(k), sort_keys=True) for s in settings}) > 1]
    rows, metric_cols = [], []
    for run, setting in zip(runs, settings):
        summary = json.loads((run / "summary.json").read_text())
        metrics = result_columns(summary)
        metric_cols += [k for k in metrics if k not in metric_cols]
        rows.append(
            {"run": _name(run), **{k: setting.get(k) for k in differing}, "status": summary["status"], **metrics}
        )
    return rows, ["run", *differing, "status", *metric_cols]


def _name(run: Path) -> str:
    # A sweep's job is named by its sweep and number; a run by its directory.
    return f"{run.parent.name}/{run.name}" if run.name.isdigit() else run.name


def _cell(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def write_tables(out: Path, rows: list[dict], columns: list[str]) -> str:
    write_text_atomic(out / "compare.csv", csv_text(rows, columns))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows]
    metric = main_metric(rows)
    scored = [r for r in rows if isinstance(r.get(metric), (int, float))] if metric else []
    if scored:
        lower = metric == "train_loss" or metric.endswith("divergence")  # lower is better for these
        best = (min if lower else max)(scored, key=lambda r: r[metric])
        lines += ["", f"{'Lowest' if lower else 'Highest'} {metric}: {best['run']} ({_cell(best[metric])})"]
    markdown = "\n".join(lines)
    write_text_atomic(out / "compare.md", markdown + "\n")
    return markdown


def _curves(run: Path) -> dict[str, list[tuple[int, float]]]:
    path = run / "metrics.jsonl"
    series: dict[str, list[tuple[int, float]]] = {}
    if not path.exists():
        return series
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a torn last line (a killed run)
        for key in CURVES:
            if isinstance(record.get(key), (int, float)) and "step" in record:
                series.setdefault(key, []).append((record["step"], record[key]))
    return series


def plot_curves(path: Path, runs: list[Path]) -> Path | None:
    """One panel per curve any run logged, one line per run, the step on every x axis."""
    per_run = {_name(run): _curves(run) for run in runs}
    keys = [k for k in CURVES if any(k in s for s in per_run.values())]
    if not keys:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    cols = min(len(keys), 3)
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for name, series in per_run.items():
            if key in series:
                steps, values = zip(*series[key])
                ax.plot(steps, values, marker="." if len(steps) < 30 else None, label=name)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
