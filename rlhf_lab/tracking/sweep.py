"""The sweep summary: after a multirun, one row per job (overrides, status, final metrics) as CSV and
Markdown, and a PNG of the main metric against the swept values. A Hydra callback; light imports only."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from rlhf_lab.paths import csv_text, write_text_atomic

# The metric a sweep is judged by, in order of preference (the first one the jobs have).
MAIN_METRICS = (
    "eval_after.accuracy",  # preference algorithms and reward models
    "eval_after.reward",  # GRPO: mean held-out reward
    "eval_after.divergence",  # GKD: held-out divergence to the teacher
    "eval_after.score",  # PPO without a solution column: held-out reward-model score
    "eval_after.reward_margin",
    "train_loss",
)


@dataclass
class SweepResult:
    total: int
    failed: int
    table: Path


last_sweep: SweepResult | None = None


def _job_dirs(sweep_dir: Path) -> list[Path]:
    dirs = [p.parent for p in sweep_dir.glob("*/summary.json")]
    return sorted(dirs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))


def result_columns(summary: dict) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key in ("train_loss", "global_steps", "seconds_per_step", "duration_s", "peak_rss_mb"):
        if key in summary:
            row[key] = summary[key]
    for phase in ("eval_before", "eval_after"):
        for k, v in (summary.get(phase) or {}).items():
            row[f"{phase}.{k}"] = v
    for k, v in (summary.get("final_train_metrics") or {}).items():
        if k in ("loss", "rewards/accuracies", "rewards/margins", "reward", "kl", "zero_variance_fraction"):
            row[f"last.{k}"] = v
    return row


def _parse_overrides(overrides: list[str]) -> dict[str, str]:
    out = {}
    for item in overrides:
        key, _, value = item.partition("=")
        out[key.lstrip("+~")] = value
    return out


def collect(sweep_dir: Path) -> tuple[list[dict], list[str], list[str]]:
    """Rows of the sweep, the swept keys (overrides that vary) and the metric columns."""
    rows, metric_cols, override_keys = [], [], []
    for job_dir in _job_dirs(sweep_dir):
        summary = json.loads((job_dir / "summary.json").read_text())
        overrides = _parse_overrides(summary.get("overrides", []))
        override_keys += [k for k in overrides if k not in override_keys]
        metrics = result_columns(summary)
        metric_cols += [k for k in metrics if k not in metric_cols]
        status = summary.get("status", "unknown")
        if status == "running":  # the job died without writing its end state
            status = "died"
        rows.append(
            {
                "job": job_dir.name,
                "status": status,
                "error": summary.get("error", ""),
                "traceback": summary.get("traceback", ""),
                **overrides,
                **metrics,
            }
        )
    swept = [k for k in override_keys if len({str(r.get(k)) for r in rows}) > 1] or override_keys
    return rows, swept, metric_cols


def write_tables(sweep_dir: Path, rows: list[dict], swept: list[str], metric_cols: list[str]) -> Path:
    columns = ["job", *swept, "status", *metric_cols, "error", "traceback"]
    write_text_atomic(sweep_dir / "sweep_summary.csv", csv_text(rows, columns))

    def cell(v: Any) -> str:
        if v is None or v == "":
            return ""
        return f"{v:.4f}" if isinstance(v, float) else str(v).replace("|", "\\|")

    # The Markdown table links each job's report (report.md, written when the job ended).
    shown = ["job", "report", *columns[1:]]
    for r in rows:
        r["report"] = f"[report]({r['job']}/report.md)" if (sweep_dir / r["job"] / "report.md").exists() else ""
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in shown) + " |" for r in rows]
    search = sweep_dir / "optimization_results.yaml"  # written by the Optuna sweeper when a search ends
    if search.exists():
        import yaml

        best = yaml.safe_load(search.read_text())
        params = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["best_params"].items()
        )
        lines += ["", f"Best trial: {params} (objective {best['best_value']})"]
    table = sweep_dir / "sweep_summary.md"
    write_text_atomic(table, "\n".join(lines) + "\n")
    return table


def main_metric(rows: list[dict]) -> str | None:
    for metric in MAIN_METRICS:
        if any(isinstance(r.get(metric), (int, float)) for r in rows):
            return metric
    return None


def _as_number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def plot(sweep_dir: Path, rows: list[dict], swept: list[str]) -> Path | None:
    metric = main_metric(rows)
    if metric is None or not swept:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_key, series_keys = swept[0], swept[1:]
    numeric_x = all(_as_number(r.get(x_key)) is not None for r in rows)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    series: dict[str, list[tuple[Any, float]]] = {}
    for r in rows:
        if not isinstance(r.get(metric), (int, float)):
            continue  # failed jobs have no metric
        label = ", ".join(f"{k}={r.get(k)}" for k in series_keys) or metric
        x = _as_number(r[x_key]) if numeric_x else str(r[x_key])
        series.setdefault(label, []).append((x, r[metric]))
    for label, points in series.items():
        points.sort(key=lambda p: p[0])
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    ax.set_xlabel(x_key)
    ax.set_ylabel(metric)
    if numeric_x and all(_as_number(r.get(x_key)) > 0 for r in rows):
        values = sorted({_as_number(r[x_key]) for r in rows})
        if len(values) > 2 and values[-1] / values[0] >= 10:
            ax.set_xscale("log")
    ax.set_title(f"{metric} vs {x_key} ({len(rows)} jobs)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = sweep_dir / "sweep_summary.png"
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def summarize(sweep_dir: Path) -> SweepResult:
    rows, swept, metric_cols = collect(sweep_dir)
    table = write_tables(sweep_dir, rows, swept, metric_cols)
    plot(sweep_dir, rows, swept)
    failed = sum(r["status"] != "completed" for r in rows)
    return SweepResult(total=len(rows), failed=failed, table=table)


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        global last_sweep
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        last_sweep = summarize(sweep_dir)
        print(f"sweep summary: {last_sweep.table} ({last_sweep.total} jobs, {last_sweep.failed} failed)")
