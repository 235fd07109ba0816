"""Data files in every layout the data layer reads, written as other tools write them (tests only)."""

import csv
import gzip
import json
from pathlib import Path


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def write_kind(kind: str, path: Path, rows: list[dict]) -> Path:
    from datasets import Dataset

    if kind == "jsonl":
        return write_jsonl(path.with_suffix(".jsonl"), rows)
    if kind == "jsonl.gz":
        target = path.with_suffix(".jsonl.gz")
        with gzip.open(target, "wt") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        return target
    if kind == "json":
        target = path.with_suffix(".json")
        target.write_text(json.dumps(rows, indent=2))
        return target
    if kind == "json lines":  # as pandas' to_json(orient="records", lines=True) writes a .json file
        return write_jsonl(path.with_suffix(".json"), rows)
    if kind in ("csv", "tsv"):
        target = path.with_suffix(f".{kind}")
        with target.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="," if kind == "csv" else "\t")
            writer.writeheader()
            writer.writerows(rows)
        return target
    if kind == "parquet":
        target = path.with_suffix(".parquet")
        Dataset.from_list(rows).to_parquet(str(target))
        return target
    if kind == "arrow":  # what datasets writes into its cache and save_to_disk folders
        Dataset.from_list(rows).save_to_disk(str(path.parent / "saved_for_arrow"))
        return next((path.parent / "saved_for_arrow").glob("*.arrow"))
    if kind == "save_to_disk":
        target = path.parent / "saved"
        Dataset.from_list(rows).save_to_disk(str(target))
        return target
    if kind == "hub folder":
        target = path.parent / "repo"
        (target / "data").mkdir(parents=True)
        Dataset.from_list(rows).to_parquet(str(target / "data" / "train-00000-of-00002.parquet"))
        Dataset.from_list(rows[:2]).to_parquet(str(target / "data" / "test-00000-of-00001.parquet"))
        return target
    raise AssertionError(kind)
