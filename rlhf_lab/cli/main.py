"""Command line: compose (Hydra) -> validate -> launch. Nothing heavy is imported here."""

from __future__ import annotations

import os
import sys

import hydra
import yaml
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from rlhf_lab.cli.config_errors import explain
from rlhf_lab.cli.hydra_flags import INFO_TOPICS, MODE_FLAGS, VALUE_FLAGS
from rlhf_lab.config import register_schemas
from rlhf_lab.errors import EXIT_USER_ERROR, ConfigError, UserError, print_error_line
from rlhf_lab.paths import CONF_DIR

# Set once the first job starts: an OSError before that is Hydra failing to create the output directory.
_job_started = False
# Set just before Hydra runs the job (not for --cfg, --help, --info): only then may processes agree on its name.
_job_may_start = False


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def _compose_and_run(cfg: DictConfig):
    global _job_started
    _job_started = True
    from rlhf_lab.runtime.job import check_objective, objective_value, run_hydra_job  # the training path, per job

    if cfg.objective:
        try:
            check_objective(cfg.objective)
        except UserError as e:  # SystemExit passes through Hydra without its multi-line report
            print_error_line(e.one_line())
            raise SystemExit(EXIT_USER_ERROR) from None
    summary = run_hydra_job(cfg)
    # A search (hparams_search=...) gets the objective's value back; a failed job gets NaN (a failed trial).
    return objective_value(summary, cfg.objective) if cfg.objective else summary


def pin_group_sweeps(argv: list[str]) -> list[str]:
    """Hydra composes a multirun's first (sweep-wide) config without the swept group choices, so keys of the
    swept options (algorithm.num_generations with algorithm=grpo,dapo) would be checked against the group's
    default option and rejected. Pin each swept group to its first value for that composition; every job
    still gets its own value (a job's own override comes later and wins)."""
    if not {"-m", "--multirun"} & set(argv):
        return argv
    from rlhf_lab.config.root import GROUPS

    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key in (*GROUPS, "experiment") and "," in value and not set("()[]{}") & set(value):
            out.append(f"{key}={value.split(',')[0]}")  # just before the sweep: positionals stay together
        out.append(arg)
    return out


def register_start_resolver() -> None:
    """${rlhf_lab_start:FORMAT} and ${rlhf_lab_unique:} in run and sweep directory names: the start time and a short
    random part that every process agrees on. Agreeing joins a launcher's process group, so it happens only once a
    run starts (when Hydra names its directory); config-only paths (--help, --cfg, the checks before the run) get this
    process's own values and never touch a launcher's environment, stale or not."""
    from datetime import datetime

    from omegaconf import OmegaConf

    from rlhf_lab.runtime.ranks import agreed_start, is_main, local_start, under_launcher

    made: dict[str, tuple[float, str]] = {}  # once per command (a dict, not functools.cache: submitit pickles this)

    def start() -> tuple[float, str]:
        which = "agreed" if _job_may_start and under_launcher() else "own"
        if which not in made:
            made[which] = agreed_start() if which == "agreed" else local_start()
        return made[which]

    OmegaConf.register_new_resolver(
        "rlhf_lab_start", lambda fmt: datetime.fromtimestamp(start()[0]).strftime(fmt), replace=True, use_cache=True
    )
    OmegaConf.register_new_resolver("rlhf_lab_unique", lambda: start()[1], replace=True, use_cache=True)
    if under_launcher() and not is_main():
        # Started by torchrun & co.: the main process writes the run directory's files and logs.
        sys.argv += ["hydra.output_subdir=null", "hydra/job_logging=disabled"]


def check_override_keys(overrides: list[str]) -> None:
    """An override with nothing before its '=' (an unset shell variable: "$KEY=0.2") names no setting."""
    for override in overrides:
        key, sep, _ = override.partition("=")
        if sep and not key.lstrip("+~").strip():
            raise ConfigError(
                None, f"the override {override!r} names no key; write key=value (e.g. algorithm.beta=0.2)"
            )


def split_args(args: list[str]) -> tuple[list[str], list[str]]:
    """(Hydra's flags with their values, the overrides)."""
    flags, overrides = [], []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-"):
            flags.append(arg)
            takes = arg in VALUE_FLAGS or (arg in ("--info", "-i") and i + 1 < len(args) and args[i + 1] in INFO_TOPICS)
            if takes and i + 1 < len(args):
                flags.append(args[i + 1])
                i += 1
        else:
            overrides.append(arg)
        i += 1
    return flags, overrides


def main() -> int:
    global _job_may_start
    from rlhf_lab.config.secrets import mask_log_records

    mask_log_records()  # before Hydra's launchers log each job's overrides
    register_schemas()
    register_start_resolver()
    args = sys.argv[1:]
    if args[:1] == ["from-swift"]:
        from rlhf_lab.cli.swift.translate import main as from_swift

        return from_swift(args[1:])
    # Let composition errors reach us (instead of Hydra printing a multi-line report and exiting 1):
    # they are the user's to fix, so they get one line and exit code 2.
    user_wants_traceback = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        from rlhf_lab.cli.verbs import main_for

        done = main_for(args)  # export, ...: verbs on trained runs
        if done is not None:
            return done
        if "--help" in args or "-h" in args:
            from rlhf_lab.cli.help import render_help

            print(render_help(CONF_DIR, [a for a in args if a not in ("--help", "-h")]))
            return 0
        flags, overrides = split_args(args)
        check_override_keys(overrides)
        from rlhf_lab.cli.swift.environment import environment_overrides
        from rlhf_lab.cli.swift.flags import check_foreign_flags

        check_foreign_flags(flags)
        added = environment_overrides(overrides)
        sys.argv[1:] = [*added, *args]  # before any flag: argparse takes overrides only ahead of them
        overrides += added
        modes = sorted({MODE_FLAGS[f] for f in flags if f in MODE_FLAGS})
        if modes == ["--cfg", "--multirun"]:
            return dry_run_sweep(overrides)
        if len(modes) > 1:
            raise ConfigError(None, f"{' and '.join(modes)} cannot be given together; use one of them")
        if modes == ["--cfg"]:
            from rlhf_lab.cli.preflight import check

            print(check(overrides, read_data=True).line(), file=sys.stderr)
        elif not modes or modes == ["--run"]:
            from rlhf_lab.cli.preflight import check

            check(overrides, read_data=False)  # a bad config stops here, before Hydra creates the run directory
        elif modes == ["--multirun"] and not _is_search(overrides):
            failed = check_sweep(overrides)  # every job's config, before the first job starts
            if failed:
                print_error_line(failed)
                return EXIT_USER_ERROR
        sys.argv[1:] = pin_group_sweeps(sys.argv[1:])
        _job_may_start = not modes or modes in (["--run"], ["--multirun"])
        _compose_and_run()
    except UserError as e:
        if user_wants_traceback:
            raise
        print_error_line(e.one_line())
        return EXIT_USER_ERROR
    except (HydraException, OmegaConfBaseException, yaml.YAMLError) as e:
        if user_wants_traceback:
            raise
        print(explain(e), file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:
        # The reader went away (`--help | head`): nothing is wrong, and nothing more can be printed.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:
        # Hydra creates the run or sweep directory and writes .hydra/ there before any job starts.
        if user_wants_traceback or _job_started:
            raise
        where = str(e.filename or "the output directory")
        where = where if len(where) <= 100 else where[:97] + "..."
        print(
            f"output error: cannot write {where}: {e.strerror or e}; choose another with hydra.run.dir=... "
            "(hydra.sweep.dir=... for -m)",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    from rlhf_lab.tracking import sweep

    if sweep.last_sweep is not None and sweep.last_sweep.failed:
        print(
            f"{sweep.last_sweep.failed} of {sweep.last_sweep.total} jobs failed; see {sweep.last_sweep.table}",
            file=sys.stderr,
        )
        return 1
    return 0


def _is_search(overrides: list[str]) -> bool:
    """An Optuna search chooses its jobs' values as it runs: they cannot be checked before it starts."""
    return any(o.split("=")[0] == "hparams_search" for o in overrides)


def check_job(job: list[str], num: int, read_data: bool) -> tuple[bool, str]:
    """(whether one job of a sweep passes the checks, its dry-run line or its one-line error)."""
    from rlhf_lab.cli.preflight import check

    try:
        return True, check(job, read_data=read_data, job_num=num).line()
    except UserError as e:
        return False, e.one_line()
    except (HydraException, OmegaConfBaseException, yaml.YAMLError) as e:
        return False, explain(e)


def check_sweep(overrides: list[str]) -> str | None:
    """The first job of a basic sweep whose config fails the checks, as one line naming it (None: all pass)."""
    from rlhf_lab.cli.preflight import sweep_jobs
    from rlhf_lab.config.secrets import mask_overrides

    for num, job in enumerate(sweep_jobs(overrides)):
        ok, line = check_job(job, num, read_data=False)
        if not ok:
            kind, _, rest = line.partition(": ")  # "config error: ..." -> "config error: job 1 (...) of the sweep: .."
            return f"{kind}: job {num} ({' '.join(mask_overrides(job))}) of the sweep: {rest}; no job was started"
    return None


def dry_run_sweep(overrides: list[str]) -> int:
    """-m with --cfg: the dry run of every job of the sweep (a basic sweep's values expanded), one line each."""
    from rlhf_lab.cli.preflight import sweep_jobs
    from rlhf_lab.config.secrets import mask_overrides

    jobs = sweep_jobs(overrides)
    failed = 0
    for num, job in enumerate(jobs):
        ok, line = check_job(job, num, read_data=True)
        failed += not ok
        print(f"job {num} ({' '.join(mask_overrides(job)) or 'defaults'}): {line}", file=sys.stderr)
    if _is_search(overrides):
        print(
            "the search's own parameters (hydra.sweeper.params) are chosen by Optuna as it runs; the jobs above "
            "use the config's values for them",
            file=sys.stderr,
        )
    print(f"{len(jobs) - failed} of {len(jobs)} jobs pass the checks", file=sys.stderr)
    return EXIT_USER_ERROR if failed else 0
