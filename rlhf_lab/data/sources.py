"""Where rows come from. Each entry of dataset.path (and dataset.val_path) is a source:

- a data file (.jsonl, .json, .parquet, .csv, ...; see readers.py): one split, `train`;
- a folder saved with `save_to_disk` (a Dataset, or a DatasetDict whose splits are its keys);
- a folder laid out as a dataset repository on the Hub (shards under data/ or in config folders, split names from
  the file names or the README's `configs`), resolved by datasets' own rules;
- a Hub id (`org/name`), loaded with `datasets.load_dataset`;

optionally followed by `#N`: N rows of it, drawn with the run's seed (more than it has repeats rows), as ms-swift's
`dataset#N`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from rlhf_lab.data.readers import FileRows, arrow_rows, read_file
from rlhf_lab.errors import DataError
from rlhf_lab.paths import resolve_data_path

_TAKE = re.compile(r"^(?P<location>.+)#(?P<take>[^#/]*)$")
# org/name as the Hub spells repository ids; a local path that does not exist and looks like one is read from the Hub.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_DATA_SUFFIX = re.compile(r"\.(jsonl|json|parquet|csv|tsv|arrow|gz)$", re.IGNORECASE)


@dataclass(frozen=True)
class SourceSpec:
    """One entry as written: the location and the number of rows to draw from it (None = all)."""

    text: str
    location: str
    take: int | None = None


def parse_source(text: str) -> SourceSpec:
    """'data.jsonl#500' -> location data.jsonl, 500 rows. Raises ValueError with the reason (the schema names the
    key)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"expected a path or hub id, got {text!r}")
    match = _TAKE.match(text)
    if match is None:
        return SourceSpec(text, text)
    take = match["take"]
    if not take.isdigit() or int(take) == 0:
        raise ValueError(f"{text!r}: what follows '#' must be a row count > 0 (e.g. data.jsonl#500)")
    return SourceSpec(text, match["location"], int(take))


class Source:
    """A resolved source: it lists its splits and reads one of them as files of rows."""

    def __init__(self, spec: SourceSpec, subset: str | None):
        self.spec = spec
        self.subset = subset
        self.path = resolve_data_path(spec.location)
        try:
            found = self.path.exists()
        except OSError as e:  # e.g. a name longer than the filesystem allows
            where = spec.location if len(spec.location) <= 80 else spec.location[:77] + "..."
            raise DataError(
                where, f"cannot be looked up ({e.strerror}, {len(spec.location)} characters); check dataset.path"
            ) from None
        if found and not (self.path.is_file() or self.path.is_dir()):
            # /dev/zero, a pipe or a socket: reading it would never end, or never start
            raise DataError(
                spec.location, "is not a regular file or folder (a device, pipe or socket); give a data file"
            )
        if found:
            self.kind = "file" if self.path.is_file() else "saved" if _is_saved(self.path) else "folder"
        elif _HUB_ID.match(spec.location) and not _DATA_SUFFIX.search(spec.location):
            self.kind = "hub"
        else:
            raise DataError(spec.location, "no such file or directory; check dataset.path / dataset.val_path")

    def __str__(self) -> str:
        return self.spec.location

    def splits(self) -> list[str]:
        """The split names this source has."""
        if self.kind == "file":
            return ["train"]
        if self.kind == "saved":
            from datasets import DatasetDict

            loaded = self._saved
            return list(loaded) if isinstance(loaded, DatasetDict) else ["train"]
        if self.kind == "folder":
            return list(self._data_files)
        return _hub_split_names(self.spec.location, self.subset)

    def read(self, split: str) -> Iterator[FileRows]:
        """The files (or the one dataset) holding this split's rows."""
        if self.kind == "file":
            if split != "train":
                raise DataError(
                    str(self),
                    f"is a single file, so it has no split {split!r}; dataset.split applies to "
                    "dataset folders and hub ids",
                )
            yield read_file(self.path, self.spec.location)
        elif self.kind == "folder":
            files = self._data_files
            if split not in files:
                raise DataError(str(self), f"has no split {split!r}; its splits: {', '.join(files)} (dataset.split)")
            for file in files[split]:
                yield read_file(Path(file))
        elif self.kind == "saved":
            yield self._saved_rows(split)
        else:
            yield _hub_rows(self.spec.location, self.subset, split)

    @cached_property
    def _saved(self):
        from datasets import load_from_disk

        try:
            return load_from_disk(str(self.path))
        except Exception as e:  # datasets raises several types for a folder it does not recognise
            raise DataError(str(self), f"not a dataset saved with save_to_disk ({e.__class__.__name__}: {e})") from e

    def _saved_rows(self, split: str) -> FileRows:
        from datasets import DatasetDict

        loaded = self._saved
        if isinstance(loaded, DatasetDict):
            if split not in loaded:
                raise DataError(str(self), f"has no split {split!r}; its splits: {', '.join(loaded)} (dataset.split)")
            loaded = loaded[split]
        elif split != "train":
            raise DataError(str(self), f"is a saved Dataset without splits, so it has no split {split!r}")
        return FileRows(str(self), "row", _dataset_rows(loaded), self.path)

    @cached_property
    def _data_files(self) -> dict[str, list[str]]:
        """Split -> files, by datasets' rules for a dataset repository (file names, or the README's configs)."""
        plain = _plain_layout(self.path) if self.subset is None else None
        if plain is not None:
            return plain
        from datasets import load_dataset_builder

        try:
            builder = load_dataset_builder(str(self.path), self.subset)
        except Exception as e:  # noqa: BLE001 - datasets raises many types; the message says what is wrong
            reason = " ".join(str(e).split())[:300]
            raise DataError(
                str(self), f"not a dataset folder datasets can read ({e.__class__.__name__}: {reason})"
            ) from None
        files = {str(split): sorted(map(str, paths)) for split, paths in (builder.config.data_files or {}).items()}
        # Only the file types rlhf_lab reads (a folder may also hold the images its rows name).
        readable = {split: [f for f in paths if _readable(f)] for split, paths in files.items()}
        readable = {split: paths for split, paths in readable.items() if paths}
        if not readable:
            raise DataError(
                str(self),
                "holds no data files rlhf_lab reads (.jsonl, .json, .parquet, .csv, .tsv, .arrow, "
                "optionally .gz) in a layout datasets recognises",
            )
        return readable


# datasets' split keywords (datasets.data_files.SPLIT_KEYWORDS), for the one layout read without importing it.
_SPLIT_FILE_STEMS = {
    "train": "train",
    "training": "train",
    "validation": "validation",
    "valid": "validation",
    "dev": "validation",
    "val": "validation",
    "test": "test",
    "testing": "test",
    "eval": "test",
    "evaluation": "test",
}


def _plain_layout(folder: Path) -> dict[str, list[str]] | None:
    """The commonest folder, one data file per split named for it (train.jsonl, val.jsonl), all of one format, and
    nothing else datasets would read: resolved as datasets resolves it, without importing datasets (half a second of
    a dry run). None for any other layout: datasets decides."""
    if (folder / "README.md").exists():
        return None  # its configs may name the files
    splits: dict[str, list[str]] = {}
    for entry in folder.iterdir():
        if entry.is_dir():
            if any(_readable(str(f)) for f in entry.rglob("*")):
                return None  # shards in sub-folders
            continue
        if not _readable(entry.name):
            continue
        split = _SPLIT_FILE_STEMS.get(entry.name.split(".")[0].lower())
        if split is None or split in splits:
            return None
        splits[split] = [str(entry)]
    suffixes = {"".join(Path(files[0]).suffixes).lower() for files in splits.values()}
    return splits if len(suffixes) == 1 else None  # one format for all splits, or datasets refuses the folder


def _readable(file: str) -> bool:
    from rlhf_lab.data.readers import READERS

    return any(file.lower().endswith(suffix) for suffix in READERS)


def _is_saved(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def _dataset_rows(dataset) -> Iterator:
    # Arrow batches give plain values: images stay {"bytes", "path"} references, decoded only when a batch needs them.
    return arrow_rows(dataset.with_format("arrow").iter(batch_size=1024))


# --- the Hub --------------------------------------------------------------------------------------------------------


def check_hub_reachable(repo_id: str) -> None:
    """One quick connection to the Hub's endpoint, so that an unreachable Hub is one line now rather than a minute of
    retries inside datasets. Offline mode (HF_HUB_OFFLINE=1) reads the local cache and needs no connection."""
    from huggingface_hub import constants

    from rlhf_lab.runtime.reachability import unreachable

    if constants.HF_HUB_OFFLINE:
        return
    why = unreachable(constants.ENDPOINT)
    if why:
        raise DataError(
            repo_id,
            f"cannot reach the Hugging Face Hub at {constants.ENDPOINT} ({why}); download the "
            f"dataset where there is a network (hf download {repo_id} --repo-type dataset --local-dir DIR) and set "
            "dataset.path=DIR, or set HF_HUB_OFFLINE=1 to read it from the local cache",
        )


def _hub_split_names(repo_id: str, subset: str | None) -> list[str]:
    from datasets import get_dataset_split_names

    check_hub_reachable(repo_id)
    try:
        return list(get_dataset_split_names(repo_id, subset))
    except Exception as e:  # noqa: BLE001 - not found, gated, bad config: one line with datasets' reason
        raise _hub_error(repo_id, e) from None


def _hub_rows(repo_id: str, subset: str | None, split: str) -> FileRows:
    from datasets import load_dataset

    check_hub_reachable(repo_id)
    try:
        dataset = load_dataset(repo_id, subset, split=split)
    except Exception as e:  # noqa: BLE001
        raise _hub_error(repo_id, e) from None
    return FileRows(f"{repo_id}[{split}]", "row", _dataset_rows(dataset), Path("."))


def _hub_error(repo_id: str, e: Exception) -> DataError:
    reason = " ".join(str(e).split())[:300]
    return DataError(repo_id, f"cannot load it from the Hub ({e.__class__.__name__}: {reason})")
