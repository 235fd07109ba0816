"""report.md: every run that ends leaves a readable report with its curves; a sweep's table links them."""

from conftest import TINY, read_summary, run_cli


def test_a_finished_run_reports_its_evaluation_and_curves(tmp_path, tiny_model_dir, train):
    run = tmp_path / "run"
    summary = train([*TINY, "train.max_steps=3"], run)
    report = (run / "report.md").read_text()
    assert report.startswith("# run\n") and "| status | completed |" in report and "| algorithm | dpo |" in report
    assert f"## Held-out evaluation ({summary['val_rows']} rows)" in report
    before, after = summary["eval_before"]["accuracy"], summary["eval_after"]["accuracy"]
    assert f"| accuracy | {before:.4g} | {after:.4g} | {after - before:.4g} |" in report
    assert "![training curves](report_curves.png)" in report
    png = run / "report_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert not list(run.glob(".report.md.*"))


def test_a_sweep_links_each_jobs_report_and_a_failed_job_reports_its_error(tmp_path, tiny_model_dir):
    sweep = tmp_path / "sweep"
    # Job 1 reads a file that is not there (a config error would stop the sweep before any job starts).
    data = "dataset.path=pkg://rlhf_lab/demo_data/arith_pairs,/no/such.jsonl"
    args = ["-m", *TINY, "train.max_steps=1", "train.eval=false", data, f"hydra.sweep.dir={sweep}"]
    assert run_cli(args, cwd=tmp_path).returncode == 1
    table = (sweep / "sweep_summary.md").read_text()
    assert "| 0 | [report](0/report.md) |" in table and "| 1 | [report](1/report.md) |" in table
    failed = (sweep / "1" / "report.md").read_text()
    assert "| status | failed |" in failed and "**Error:**" in failed and "/no/such.jsonl: no such file" in failed
    assert read_summary(sweep / "1")["status"] == "failed"
