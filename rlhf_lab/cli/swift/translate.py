"""`python -m rlhf_lab from-swift <swift rlhf command line>`: the same experiment as an rlhf_lab command.

The command line comes as arguments (as the shell expanded them), as one quoted string, or as a script file; shell
variables set in the script (nproc_per_node=2) and `$(expr A / B)` are expanded. The rlhf_lab command goes to
stdout; what each flag became, and the flags with no equivalent (and why), go to stderr.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rlhf_lab.cli.swift.flags import ENV_FLAGS, FLAGS, KEPT_ENV, RUN_NAME, Refused, as_override
from rlhf_lab.errors import EXIT_USER_ERROR

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


@dataclass
class Translation:
    overrides: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    # (what was given, what it became)
    mapped: list[tuple[str, str]] = field(default_factory=list)
    # (what was given, why it has no equivalent)
    refused: list[tuple[str, str]] = field(default_factory=list)
    # (what was given, why rlhf_lab needs none)
    unneeded: list[tuple[str, str]] = field(default_factory=list)
    # What to check by hand.
    notes: list[str] = field(default_factory=list)

    def command(self) -> str:
        words = [*self.env, "python", "-m", "rlhf_lab", *self.overrides]
        return " ".join(shlex.quote(w) for w in words)


def _expand(text: str, variables: dict[str, str]) -> str:
    def expr(match: re.Match) -> str:
        a, op, b = match.group(1), match.group(2), match.group(3)
        x, y = int(a), int(b)
        return str({"+": x + y, "-": x - y, "*": x * y, "/": x // y if y else 0}[op])

    for _ in range(3):
        text = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), text)
    return re.sub(r"\$\(\s*expr\s+(\d+)\s*\\?([-+*/])\s*(\d+)\s*\)", expr, text)


def words_of(args: list[str]) -> list[str]:
    """The command's words: from the arguments, one quoted string, or a script file."""
    if len(args) == 1 and Path(args[0]).is_file():
        text = Path(args[0]).read_text()
    elif len(args) == 1 and " " in args[0]:
        text = args[0]
    else:
        return args
    text = text.replace("\\\r\n", " ").replace("\\\n", " ")
    variables: dict[str, str] = {}
    command: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words = shlex.split(_expand(line, variables), comments=True)
        if len(words) == 1 and _ASSIGNMENT.match(words[0]) and not command:
            name, value = _ASSIGNMENT.match(words[0]).groups()
            variables[name] = value
            continue
        if "swift" in words or any(w.startswith("--") for w in words) or command:
            command.extend(words)
    return command


def translate(words: list[str]) -> Translation:
    out = Translation()
    i = 0
    # Leading VAR=value words, then `swift rlhf` (or just the flags).
    env: dict[str, str] = {}
    while i < len(words) and _ASSIGNMENT.match(words[i]):
        name, value = _ASSIGNMENT.match(words[i]).groups()
        env[name] = value
        i += 1
    while i < len(words) and not words[i].startswith("--"):
        if words[i] not in ("swift", "rlhf"):
            out.refused.append((words[i], "only `swift rlhf` command lines are translated"))
        i += 1
    flags: list[tuple[str, list[str]]] = []
    while i < len(words):
        name, eq, value = words[i][2:].partition("=")
        values = [value] if eq else []
        i += 1
        while not eq and i < len(words) and not words[i].startswith("--"):
            values.append(words[i])
            i += 1
        flags.append((name, values))
    for name, value in env.items():
        _environment(out, name, value)
    for name, values in flags:
        _flag(out, name, values)
    _without_version(out)
    _hub_ids(out, flags)
    _nproc_without_engine(out, env)
    _check_against_schemas(out)
    return out


def _environment(out: Translation, name: str, value: str) -> None:
    given = f"{name}={value}"
    if name in ENV_FLAGS:
        if "$" in value:
            out.refused.append((given, "holds a shell expression; give the value itself"))
            return
        override = f"{ENV_FLAGS[name]}={value}"
        out.overrides.append(override)
        out.mapped.append((given, override))
    elif name in KEPT_ENV:
        out.env.append(given)
        out.mapped.append((given, f"{given} (kept: it means the same to rlhf_lab)"))
    else:
        out.refused.append((given, "an environment variable rlhf_lab does not read"))


def _flag(out: Translation, name: str, values: list[str]) -> None:
    given = " ".join([f"--{name}", *values])
    flag = FLAGS.get(name)
    if flag is None:
        out.refused.append((given, "not a swift rlhf flag rlhf_lab knows"))
        return
    if flag.unneeded:
        out.unneeded.append((given, flag.unneeded))
        return
    if flag.refused:
        out.refused.append((given, flag.refused))
        return
    if not values:
        values = ["true"]  # a bare boolean flag
    if any("$" in v for v in values):
        out.refused.append(
            (
                given,
                "holds a shell expression; give the value itself (or pass the command unquoted so "
                "that the shell expands it)",
            )
        )
        return
    try:
        if flag.convert:
            overrides = flag.convert(values)
        elif flag.many or len(values) == 1:
            overrides = [as_override(flag.key, values, flag.many)]
        else:
            raise Refused(f"--{name} takes one value, got {len(values)}")
    except Refused as e:
        out.refused.append((given, str(e)))
        return
    out.overrides.extend(overrides)
    out.mapped.append((given, " ".join(overrides)))


def _without_version(out: Translation) -> None:
    """--add_version false: the run goes into --output_dir itself, as in ms-swift."""
    if "--no-version" not in out.overrides:
        return
    out.overrides = [
        o.replace(f"/{RUN_NAME}", "") if o.startswith("hydra.run.dir=") else o
        for o in out.overrides
        if o != "--no-version"
    ]
    out.mapped = [(g, b.replace("--no-version", "hydra.run.dir=--output_dir itself")) for g, b in out.mapped]


def _hub_ids(out: Translation, flags: list[tuple[str, list[str]]]) -> None:
    given = dict(flags)
    if given.get("use_hf") == ["true"]:
        return
    bare = [
        v.split("#")[0].split(":")[0]
        for name in ("model", "dataset", "teacher_model", "reward_model", "ref_model")
        for v in given.get(name, [])
    ]
    ids = [v for v in bare if HUB_ID.match(v) and not Path(v).exists()]
    if ids:
        out.notes.append(
            f"ms-swift reads {', '.join(ids)} from ModelScope (no --use_hf true); rlhf_lab reads the Hugging "
            "Face Hub, where a ModelScope id may be missing or named differently: check each one, or "
            "download it and give the local folder"
        )


def _nproc_without_engine(out: Translation, env: dict[str, str]) -> None:
    """NPROC_PER_NODE > 1 with no --deepspeed: ms-swift runs DDP."""
    nproc = env.get("NPROC_PER_NODE", "1")
    nnodes = env.get("NNODES", "1")
    many = nproc.isdigit() and nnodes.isdigit() and int(nproc) * int(nnodes) > 1
    if many and not any(o.startswith("distributed=") for o in out.overrides):
        out.overrides.append("distributed=ddp")
        out.mapped.append((f"NPROC_PER_NODE={nproc}", "distributed=ddp (several processes, no --deepspeed)"))


def _check_against_schemas(out: Translation) -> None:
    """An algorithm or tuner setting the chosen algorithm or tuner does not have is refused, by name (ms-swift
    ignores --rpo_alpha for KTO; rlhf_lab would reject the key)."""
    from rlhf_lab.config.introspect import option_fields

    chosen = {"algorithm": "dpo", "tuner": "lora"}
    for override in out.overrides:
        key, _, value = override.partition("=")
        if key in chosen:
            chosen[key] = value
    kept = []
    for override in out.overrides:
        key = override.partition("=")[0]
        group, _, field_name = key.partition(".")
        if group in chosen and field_name and field_name not in option_fields(group, chosen[group]):
            given = next((g for g, became in out.mapped if override in became.split(" ")), override)
            out.refused.append((given, f"not a setting of {group}={chosen[group]}"))
            out.mapped = [(g, b) for g, b in out.mapped if g != given]
            continue
        kept.append(override)
    out.overrides = kept


def main(args: list[str]) -> int:
    if not args:
        print(
            "usage: python -m rlhf_lab from-swift <a swift rlhf command line, its words, or a script file>",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    words = words_of(args)
    if not any(w.startswith("--") for w in words):
        print(
            f"config error: no swift rlhf flags found in {' '.join(args)[:80]!r}; give the command line (swift rlhf "
            "--rlhf_type dpo --model ...) or a script that holds it",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    result = translate(words)
    print(result.command())
    for given, became in result.mapped:
        print(f"  {given}  ->  {became}", file=sys.stderr)
    for given, why in result.unneeded:
        print(f"  {given}  ->  (not needed: {why})", file=sys.stderr)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if result.refused:
        print(f"not translated ({len(result.refused)}):", file=sys.stderr)
        for given, why in result.refused:
            print(f"  {given}: {why}", file=sys.stderr)
    return 0
