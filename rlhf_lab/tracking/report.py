"""report.md beside every finished run: what ran, how it ended, the held-out evaluation before and after, the last
training metrics and a PNG of the training curves (report_curves.png), so that a look tells whether training went
well. Written when the run ends (completed, failed or interrupted), replaced atomically."""

from __future__ import annotations

import logging
from pathlib import Path

from rlhf_lab.paths import write_text_atomic

log = logging.getLogger("rlhf_lab")

REPORT = "report.md"
CURVES_PNG = "report_curves.png"


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def render(run_dir: Path, summary: dict, curves: Path | None) -> str:
    lines = [f"# {run_dir.name}", ""]
    facts = [
        ("status", summary.get("status")),
        ("algorithm", summary.get("algorithm")),
        ("model", summary.get("model")),
        ("tuner", summary.get("tuner")),
        ("optimizer steps", summary.get("global_steps")),
        ("seconds per step", summary.get("seconds_per_step")),
        ("duration (s)", summary.get("duration_s")),
        ("saved", summary.get("saved_model")),
        ("overrides", " ".join(summary.get("overrides") or []) or None),
    ]
    lines += ["| | |", "|---|---|", *(f"| {k} | {_fmt(v)} |" for k, v in facts if v is not None)]
    if summary.get("error"):
        lines += ["", f"**Error:** {_fmt(summary['error'])}"]
    before, after = summary.get("eval_before"), summary.get("eval_after")
    if before or after:
        lines += ["", f"## Held-out evaluation ({summary.get('val_rows')} rows)", ""]
        lines += ["| metric | before | after | change |", "|---|---|---|---|"]
        for key in before or after:
            b, a = (before or {}).get(key), (after or {}).get(key)
            change = a - b if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None
            lines.append(f"| {key} | {_fmt(b)} | {_fmt(a)} | {_fmt(change)} |")
    last = summary.get("final_train_metrics") or {}
    if last:
        lines += ["", "## Last training metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in last.items()]
    if curves is not None:
        lines += ["", "## Training curves", "", f"![training curves]({curves.name})"]
    return "\n".join(lines) + "\n"


def write_report(run_dir: Path, summary: dict) -> Path | None:
    """The report of a run that has ended; a failure to draw it is logged, never the run's failure."""
    from rlhf_lab.tracking.compare import plot_curves

    try:
        curves = plot_curves(run_dir / CURVES_PNG, [run_dir])
        path = run_dir / REPORT
        write_text_atomic(path, render(run_dir, summary, curves))
        return path
    except Exception as e:  # a report is a convenience: the run's own outputs are already written
        log.warning("could not write %s: %s", run_dir / REPORT, e)
        return None
