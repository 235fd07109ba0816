"""Every schema field carries a one-line description, and `--help` prints each key with its value and description."""

import dataclasses
import importlib
import importlib.util
import pkgutil
import subprocess
import sys
import typing

import pytest

import rlhf_lab.algorithms
import rlhf_lab.config
from rlhf_lab.cli.help import WIDTH, render_help
from rlhf_lab.config.fields import field_help
from rlhf_lab.config.root import RootConfig
from rlhf_lab.config.store import schemas
from rlhf_lab.paths import CONF_DIR

MAX_HELP = 150
DPO = schemas()["algorithm"]["dpo"]
GRPO = schemas()["algorithm"]["grpo"]


def _with_nested(schema: type) -> list[type]:
    """The schema and every dataclass its fields are typed with, recursively."""
    found = [schema]
    for hint in typing.get_type_hints(schema).values():
        if dataclasses.is_dataclass(hint):
            found += _with_nested(hint)
    return found


def _stored_schemas() -> list[type]:
    roots = [RootConfig, *(s for options in schemas().values() for s in options.values())]
    return list(dict.fromkeys(s for root in roots for s in _with_nested(root)))


def _schema_modules() -> list[str]:
    """rlhf_lab/config/ (but run.py: the validated Run is built from the keys, not a group of them) and each
    algorithm family's config.py."""
    shared = [f"rlhf_lab.config.{i.name}" for i in pkgutil.iter_modules(rlhf_lab.config.__path__) if i.name != "run"]
    families = [
        f"rlhf_lab.algorithms.{i.name}.config" for i in pkgutil.iter_modules(rlhf_lab.algorithms.__path__) if i.ispkg
    ]
    return shared + families


def test_every_algorithm_family_has_its_options_module():
    assert {"rlhf_lab.algorithms.preference.config", "rlhf_lab.algorithms.grpo.config"} <= set(_schema_modules())
    assert all(importlib.util.find_spec(m) for m in _schema_modules())


def _module_schemas() -> list[type]:
    """Every dataclass of the schema modules, registered or not (base classes included)."""
    found = []
    for name in _schema_modules():
        module = importlib.import_module(name)
        found += [
            obj
            for obj in vars(module).values()
            if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == module.__name__
        ]
    return found


def _bad_descriptions(schemas: list[type]) -> list[str]:
    bad = []
    for schema in schemas:
        for f in dataclasses.fields(schema):
            text = field_help(schema, f.name)
            if not text or not text.strip() or "\n" in text or len(text) > MAX_HELP:
                bad.append(f"{schema.__name__}.{f.name}: {text!r}")
    return bad


def _flat(text: str) -> str:
    # Descriptions are wrapped to the terminal width; compare them with whitespace collapsed.
    return " ".join(text.split())


def _key_line(out: str, key: str) -> list[str]:
    """The words of the line that lists key: the key, its value, then the start of its description."""
    return next(line.split() for line in out.splitlines() if line.startswith(f"  {key} "))


def _default(schema: type, name: str):
    return next(f.default for f in dataclasses.fields(schema) if f.name == name)


def test_stored_schema_fields_have_one_line_descriptions():
    stored = _stored_schemas()
    assert RootConfig in stored and len(stored) > 20
    assert _bad_descriptions(stored) == []


def test_every_schema_dataclass_field_has_a_description():
    assert _bad_descriptions(_module_schemas()) == []


def test_help_lists_the_default_algorithm_keys_with_values_and_descriptions():
    out = render_help(CONF_DIR, [])
    assert "algorithm=dpo:" in out
    assert _key_line(out, "algorithm.beta")[1] == str(_default(DPO, "beta")) == "0.1"
    assert _flat(field_help(DPO, "beta")) in _flat(out)
    assert _key_line(out, "train.max_steps")[1] == "-1"
    assert all(len(line) <= WIDTH for line in out.splitlines())


def test_help_with_a_group_option_lists_its_keys():
    out = render_help(CONF_DIR, ["algorithm=grpo"])
    assert "algorithm=grpo:" in out
    assert _key_line(out, "algorithm.num_generations")[1] == "8"
    assert _flat(field_help(GRPO, "num_generations")) in _flat(out)
    assert "algorithm.loss_weights" not in out  # a DPO key


def test_help_shows_overridden_values():
    out = render_help(CONF_DIR, ["algorithm.beta=0.3", "tuner=full"])
    assert _key_line(out, "algorithm.beta")[1] == "0.3"
    assert "tuner=full:" in out and "tuner.r " not in out


@pytest.mark.parametrize(
    "overrides",
    [
        ["algorithm=dapo", "distributed=zero3", "logger=wandb"],
        ["algorithm=gkd", "tuner=full", "distributed=fsdp"],
        ["algorithm=ppo", "distributed=ddp", "hparams_search=dpo_beta"],
    ],
)
def test_every_key_in_help_has_a_description(overrides):
    from rlhf_lab.cli.help import _compose, _sections

    rows = [row for rows in _sections(*_compose(CONF_DIR, overrides)).values() for row in rows]
    assert len(rows) > 50
    assert [key for key, _, description in rows if not description] == []


def test_cli_help_with_a_group_option(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rlhf_lab", "algorithm=grpo", "--help"], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert _key_line(proc.stdout, "algorithm.num_generations")[1] == "8"
    assert _flat(field_help(GRPO, "num_generations")) in _flat(proc.stdout)


def test_help_into_a_closed_pipe_ends_quietly():
    """`--help | head`: the reader may be gone before help is written (here it is closed at once)."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "rlhf_lab", "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert proc.wait(timeout=60) == 0 and stderr == "", stderr
