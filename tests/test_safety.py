"""Values that used to pass the door and do harm later, a torn metrics line on resume, an empty run directory, and
a run whose loss turns NaN: each is one line (exit 2), never a traceback or a run reported as completed."""

from __future__ import annotations

import json
import os

import pytest
from conftest import TINY, read_summary, run_cli, run_cli_process


@pytest.mark.parametrize(
    "override, needle",
    [
        ("algorithm.beta=inf", "algorithm.beta: must be a finite number, got inf"),
        ("train.max_grad_norm=nan", "train.max_grad_norm: must be a finite number, got nan"),
        ("train.learning_rate=nan", "train.learning_rate: must be a finite number, got nan"),
        ("train.warmup_ratio=2", "train.warmup_ratio: must be in [0.0, 1.0], got 2.0"),
        ("train.max_grad_norm=-1", "train.max_grad_norm: must be >= 0"),
    ],
)
def test_values_that_do_harm_later_are_one_line_at_the_door(tmp_path, override, needle):
    proc = run_cli([override, "--cfg", "job"], cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr


def test_a_list_value_that_is_not_finite_names_its_index(tmp_path):
    proc = run_cli(["algorithm=grpo", "algorithm.reward_weights=[1,nan]", "--cfg", "job"], cwd=tmp_path)
    assert proc.returncode == 2 and "algorithm.reward_weights[1]: must be a finite number" in proc.stderr


def test_an_empty_run_directory_is_a_config_error_and_nothing_is_written(tmp_path):
    proc = run_cli([*TINY, "hydra.run.dir="], cwd=tmp_path)
    assert proc.returncode == 2
    assert "hydra.run.dir: is '', the current directory" in proc.stderr.strip().splitlines()[-1]
    assert not [p for p in tmp_path.iterdir() if p.name != ".hydra"]


def test_a_torn_last_metrics_line_is_dropped_on_resume(tmp_path, tiny_model_dir):
    run = tmp_path / "run"
    args = [*TINY, "train.max_steps=2", "train.save_steps=1", "train.logging_steps=1", f"hydra.run.dir={run}"]
    assert run_cli(args, cwd=tmp_path).returncode == 0
    metrics = run / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"step": 3, "loss": 0.6')  # a kill mid-append
    proc = run_cli([*args[:-1], "train.max_steps=3", f"hydra.run.dir={run}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "its last line was cut short" in proc.stdout + proc.stderr
    records = [json.loads(line) for line in metrics.read_text().splitlines()]  # every line whole again
    assert read_summary(run)["global_steps"] == 3 and records


def test_a_run_whose_loss_turns_nan_stops_as_failed_without_a_model(tmp_path, tiny_model_dir):
    run = tmp_path / "run"
    args = [*TINY, "train.learning_rate=1e30", "train.max_grad_norm=0", "train.max_steps=4", "train.logging_steps=1"]
    proc = run_cli([*args, f"hydra.run.dir={run}"], cwd=tmp_path)
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("training error:") and "became nan by step" in line and "no model was saved" in line
    summary = read_summary(run)
    assert summary["status"] == "failed"
    assert not (run / "adapter").exists() and not (run / "model").exists()
    # experts may let it run on
    proc = run_cli([*args, "train.stop_on_nan=false", f"hydra.run.dir={tmp_path}/on"], cwd=tmp_path)
    assert proc.returncode == 0 and read_summary(tmp_path / "on")["status"] == "completed"


def test_a_dry_run_with_an_empty_run_directory_says_so_too(tmp_path):
    proc = run_cli(["hydra.run.dir=.", "--cfg", "job"], cwd=tmp_path)
    assert proc.returncode == 2 and "hydra.run.dir: is '.', the current directory" in proc.stderr


# ---- checkpoints: only this user's own, exactly as written, reach an engine that unpickles ----


class _Payload:
    """Unpickling this writes a file: the stand-in for code hidden in a stranger's checkpoint."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _checkpoint(root, step, *, signed=True, payload=None):
    import pickle

    from rlhf_lab.training.checkpoints import write_manifest

    folder = root / "checkpoints" / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step, "max_steps": 9}))
    model_states = folder / f"global_step{step}" / "mp_rank_00_model_states.pt"
    model_states.parent.mkdir()
    model_states.write_bytes(pickle.dumps(_Payload(payload)) if payload else b"x" * 64)
    if signed:
        write_manifest(folder, step, run_id="r1")
    return folder


def _forged(folder, step):
    """What a stranger can make: a manifest with the right sizes (and made-up hashes), but not this user's key."""
    from rlhf_lab.training.checkpoints import MANIFEST

    files = {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}
    manifest = {"step": step, "run_id": "r1", "files": files, "sha256": dict.fromkeys(files, "0" * 64)}
    (folder / MANIFEST).write_text(json.dumps({**manifest, "signature": "f" * 64}))


@pytest.mark.parametrize("backend", ["zero2", "zero3", "fsdp_sharded"])
def test_a_strangers_checkpoint_is_refused_before_an_unpickling_engine_reads_it(tmp_path, compose, backend):
    from rlhf_lab.config.run import build_run
    from rlhf_lab.errors import ConfigError
    from rlhf_lab.training.checkpoints import problem

    marker = tmp_path / "payload-ran"
    folder = _checkpoint(tmp_path / "download", 1, signed=False, payload=marker)
    _forged(folder, 1)
    assert problem(folder) is None  # complete by sizes: the old check let it through
    distributed = (
        ["distributed=fsdp", "distributed.full_state_dict=false"]
        if backend == "fsdp_sharded"
        else [f"distributed={backend}"]
    )
    cfg = compose([*TINY, *distributed, f"train.resume={folder}"])
    with pytest.raises(ConfigError) as e:
        build_run(cfg, tmp_path / "run")
    line = e.value.one_line()
    assert "train.resume" in line and "not a checkpoint your runs wrote" in line and "pickle" in line
    assert "train.trust_checkpoint=true" in line
    assert not marker.exists()
    # The user who trusts its author may say so; nothing is read while the config is checked.
    run = build_run(compose([*TINY, *distributed, f"train.resume={folder}", "train.trust_checkpoint=true"]), tmp_path)
    assert run.resume.path == folder and not marker.exists()


def test_a_strangers_checkpoint_is_refused_on_the_command_line_in_one_line(tmp_path):
    marker = tmp_path / "payload-ran"
    folder = _checkpoint(tmp_path / "download", 1, signed=False, payload=marker)
    _forged(folder, 1)
    proc = run_cli([*TINY, "distributed=zero2", f"train.resume={folder}"], cwd=tmp_path)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "not a checkpoint your runs wrote" in proc.stderr
    assert not marker.exists()


def test_own_checkpoints_pass_and_any_change_after_writing_is_caught(tmp_path, monkeypatch):
    from rlhf_lab.training.checkpoint_identity import KEY_FILE
    from rlhf_lab.training.checkpoints import MANIFEST, check_ours

    monkeypatch.setenv("RLHF_LAB_CACHE", str(tmp_path / "cache"))
    folder = _checkpoint(tmp_path, 3)
    assert oct((tmp_path / "cache" / KEY_FILE).stat().st_mode & 0o777) == "0o600"
    check_ours(folder, "DeepSpeed")  # written by this user's rlhf_lab: accepted

    def refused(reason):
        from rlhf_lab.errors import ConfigError

        with pytest.raises(ConfigError, match=reason):
            check_ours(folder, "DeepSpeed")

    states = folder / "global_step3" / "mp_rank_00_model_states.pt"
    original = states.read_bytes()
    states.write_bytes(b"y" + original[1:])  # same size, other content
    refused("global_step3/mp_rank_00_model_states.pt changed after it was written")
    states.write_bytes(original)
    (folder / "global_step3" / "extra.pt").write_bytes(b"z")
    refused("extra.pt was added after it was written")
    (folder / "global_step3" / "extra.pt").unlink()
    manifest = json.loads((folder / MANIFEST).read_text())
    (folder / MANIFEST).write_text(json.dumps({**manifest, "run_id": "other"}))
    refused("signature is not this user's")
    (folder / MANIFEST).write_text(json.dumps(manifest))
    check_ours(folder, "DeepSpeed")
    monkeypatch.setenv("RLHF_LAB_CACHE", str(tmp_path / "another-user"))  # another user's key
    refused("signature is not this user's")


def test_weights_only_backends_resume_any_complete_checkpoint_without_the_signature(tmp_path, compose):
    from rlhf_lab.config.run import build_run

    folder = _checkpoint(tmp_path / "download", 1, signed=False)
    _forged(folder, 1)
    run = build_run(compose([*TINY, f"train.resume={folder}"]), tmp_path / "run")  # single: read weights-only
    assert run.resume.path == folder


# ---- run directories: claimed by one live run, never clobbered ----


def test_runs_started_in_the_same_second_get_their_own_directories(monkeypatch):
    import time

    from rlhf_lab.cli.main import register_start_resolver
    from rlhf_lab.cli.preflight import compose
    from rlhf_lab.config import register_schemas

    register_schemas()
    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.0)  # one second for both commands
    dirs = []
    for _ in range(2):
        register_start_resolver()  # what each command does first
        dirs.append(compose([*TINY])[1])
    assert dirs[0] != dirs[1]
    assert dirs[0].name.split("-")[:-1] == dirs[1].name.split("-")[:-1]  # the same date and time, then apart
    assert all(d.name.endswith("_dpo") for d in dirs)


def test_two_runs_started_together_from_one_folder_both_complete_apart(tmp_path):
    import subprocess
    import sys

    args = [sys.executable, "-m", "rlhf_lab", *TINY, "train.max_steps=1", "train.eval=false"]
    procs = [subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-2000:]
    run_dirs = sorted((tmp_path / "outputs" / "runs").iterdir())
    assert len(run_dirs) == 2
    for run_dir in run_dirs:
        summary = read_summary(run_dir)
        assert summary["status"] == "completed" and summary["run_dir"] == str(run_dir)
        assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()


def test_a_second_live_run_into_a_held_directory_is_one_line_and_touches_nothing(tmp_path):
    from rlhf_lab.runtime.claim import claimed

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("mine")
    with claimed(run_dir):  # a live run holds it
        proc = run_cli([*TINY, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
        dry = run_cli([*TINY, f"hydra.run.dir={run_dir}", "--cfg", "job"], cwd=tmp_path)
    for p in (proc, dry):
        assert p.returncode == 2
        (line,) = p.stderr.strip().splitlines()
        assert f"hydra.run.dir: {run_dir} is in use by a live run (pid {os.getpid()}" in line
    assert sorted(p.name for p in run_dir.iterdir()) == [".rlhf_lab.lock", "notes.txt"]  # no .hydra written
    assert run_cli([*TINY, f"hydra.run.dir={run_dir}", "--cfg", "job"], cwd=tmp_path).returncode == 0  # released


def test_a_rerun_without_a_checkpoint_keeps_the_earlier_runs_files(tmp_path):
    run_dir = tmp_path / "run"
    args = [*TINY, "train.max_steps=1", "train.eval=false", "train.save_steps=0", f"hydra.run.dir={run_dir}"]
    assert run_cli(args, cwd=tmp_path).returncode == 0
    first = (run_dir / "adapter" / "adapter_model.safetensors").read_bytes()
    proc = run_cli([*args, "train.seed=7"], cwd=tmp_path)  # seed is a training setting: use the same run's
    assert proc.returncode == 2
    proc = run_cli(args, cwd=tmp_path)  # the same run again, with nothing to continue from
    assert proc.returncode == 0, proc.stderr[-2000:]
    (aside,) = run_dir.glob("before-*")
    assert "no checkpoint to continue from: the earlier run's files in this directory are kept in" in (
        proc.stdout + proc.stderr
    )
    assert (aside / "adapter" / "adapter_model.safetensors").read_bytes() == first
    assert (aside / "metrics.jsonl").read_text() and read_summary(aside)["status"] == "completed"


def test_publishing_a_folder_never_leaves_neither_copy(tmp_path, monkeypatch):
    from rlhf_lab import paths

    final, new = tmp_path / "adapter", tmp_path / ".adapter.partial"
    final.mkdir()
    (final / "w").write_text("old")
    new.mkdir()
    (new / "w").write_text("new")
    real = os.replace
    calls = []

    def interrupted(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise KeyboardInterrupt  # between moving the old one aside and the new one in
        real(src, dst)

    monkeypatch.setattr(paths.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        paths.publish_dir(new, final)
    (aside,) = tmp_path.glob(".adapter.replaced-*")
    assert (aside / "w").read_text() == "old" and (new / "w").read_text() == "new"
    monkeypatch.setattr(paths.os, "replace", real)
    paths.publish_dir(new, final)
    assert (final / "w").read_text() == "new"


def test_parallel_builds_of_a_cache_entry_take_turns(tmp_path):
    import threading
    import time

    from rlhf_lab.paths import build_once

    target = tmp_path / "models" / "entry"
    builds = []

    def build():
        builds.append(1)
        time.sleep(0.3)
        target.mkdir(parents=True)
        (target / "config.json").write_text("{}")
        return target

    threads = [threading.Thread(target=build_once, args=(target, build)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1


def test_an_unwritable_model_cache_is_one_line_before_any_conversion(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    # In a process of its own: this one has the tiny model built already.
    proc = run_cli_process(
        [*TINY, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, env={"RLHF_LAB_CACHE": str(blocker)}
    )
    assert proc.returncode == 2
    assert f"cannot write the model cache at {blocker}/models" in proc.stderr.strip().splitlines()[-1]
    assert "set RLHF_LAB_CACHE to a writable directory" in proc.stderr


# ---- records: written whole, by rename, and the rename made durable ----


def test_records_are_replaced_whole_and_their_folder_synced(tmp_path, monkeypatch):
    from rlhf_lab import paths
    from rlhf_lab.tracking.sweep import write_tables

    table = tmp_path / "sweep_summary.md"
    table.write_text("the earlier table\n")
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.path.realpath(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(paths.os, "fsync", fsync)
    rows = [{"job": "0", "status": "completed", "eval_after.accuracy": 0.5}]
    write_tables(tmp_path, rows, [], ["eval_after.accuracy"])
    assert "| 0 |" in table.read_text() and (tmp_path / "sweep_summary.csv").read_text().startswith("job,")
    assert str(tmp_path) in synced  # the directory, after the rename
    monkeypatch.setattr(paths.os, "replace", lambda *a: (_ for _ in ()).throw(OSError(28, "No space left")))
    with pytest.raises(OSError):
        write_tables(tmp_path, [{**rows[0], "status": "failed"}], [], ["eval_after.accuracy"])
    assert "completed" in table.read_text()  # the earlier one, whole
    assert not list(tmp_path.glob(".*.tmp"))


# ---- every value checked at the door ----

LONG = "/tmp/" + "a" * 5000


@pytest.mark.parametrize(
    "overrides, needle",
    [
        (["+algorithm.betta=0.2"], "unknown key 'algorithm.betta' (did you mean 'algorithm.beta'?)"),
        (["++algorithm.betta=0.2"], "unknown key 'algorithm.betta' (did you mean 'algorithm.beta'?)"),
        (["+anything=1"], "unknown key 'anything'; '+' adds no setting"),
        (["tuner.name=full"], "tuner.name: is set by the tuner option, not on its own"),
        (["algorithm.name=kto"], "choose the option instead: algorithm=kto"),
        (["distributed.backend=ddp"], "choose the option instead: distributed=ddp"),
        (["logger.backend=wandb"], "choose the option instead: logger=wandb"),
        (["train.seed=-1"], "train.seed: must be in [0, 4294967296), got -1"),
        (["train.dataset_num_proc=-2"], "train.dataset_num_proc: must be > 0, got -2"),
        (["model.attn_implementation=flash_attention_2"], "needs the flash_attn package, which is not installed"),
        (["distributed=ddp", "distributed.nproc_per_node=1"], "distributed=ddp with one process in all"),
        (["=0.2"], "the override '=0.2' names no key"),
        ([f"dataset.path={LONG}"], "cannot be looked up (File name too long, 5005 characters)"),
        (["dataset.path=/dev/zero"], "data error: /dev/zero: is not a regular file or folder"),
        (["objective=foo"], "config error: objective: 'foo' is not a summary.json value"),
    ],
)
def test_values_a_library_would_reject_later_are_one_line_at_the_door(tmp_path, overrides, needle):
    proc = run_cli([*TINY, *overrides, "--cfg", "job"], cwd=tmp_path)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert needle in line and len(line) < 600, line


@pytest.mark.parametrize(
    "overrides, needle",
    [
        (["tuner.target_modules=[q_proj,nope_proj]"], "tuner.target_modules: nope_proj names no module of"),
        (["model.min_pixels=100"], "model.min_pixels: sizes images, but"),
        (["tuner.freeze_vit=false"], "tuner.freeze_vit: applies to a vision tower"),
    ],
)
def test_settings_that_depend_on_the_model_are_checked_before_it_loads(tmp_path, overrides, needle):
    proc = run_cli([*TINY, *overrides, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert proc.returncode == 2
    assert needle in proc.stderr.strip().splitlines()[-1]
    assert "model loaded" not in proc.stdout + proc.stderr
    assert not (tmp_path / "run").exists()  # made for this command, and it never began


def test_a_sweep_checks_every_job_before_the_first_starts(tmp_path):
    proc = run_cli(["-m", *TINY, "algorithm.beta=0.1,-1", f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("config error: job 1 (") and "algorithm.beta=-1" in line
    assert "of the sweep: algorithm.beta: must be > 0, got -1.0; no job was started" in line
    assert not (tmp_path / "sweep").exists()  # job 0 never trained


# ---- rewards: built once per job, after the checks that import them ----


@pytest.mark.parametrize(
    "entry", ["helpers.custom_rewards.CountedReward", "{_target_: helpers.custom_rewards.CountedReward, scale: 2.0}"]
)
def test_a_reward_object_is_built_once_for_checks_and_training(tmp_path, tiny_model_dir, entry):
    from conftest import GRPO_TINY
    from helpers.custom_rewards import CountedReward

    before = CountedReward.built
    proc = run_cli([*GRPO_TINY, f"algorithm.reward_funcs=[{entry}]", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert CountedReward.built - before == 1  # was 3 or more: two config checks, the data check and the trainer
    assert read_summary(tmp_path / "run")["status"] == "completed"


def test_a_dotted_path_class_that_cannot_be_built_is_one_line(tmp_path):
    proc = run_cli(
        ["algorithm=grpo", "algorithm.reward_funcs=[helpers.custom_rewards.BreaksWhenBuilt]", "--cfg", "job"], tmp_path
    )
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "algorithm.reward_funcs[0]: cannot build 'helpers.custom_rewards.BreaksWhenBuilt'" in line
    assert "RuntimeError: no client for you" in line


def test_the_door_report_judges_a_case_by_its_exit_code_and_its_one_line(tmp_path):
    from conftest import load_script

    report = load_script("door_report")
    (case,) = [c for c in report.cases(tmp_path) if c.name == "override without key"]
    row = report.run(case)
    assert row["behaves"] and row["exit"] == 2 and row["line"].startswith("config error: the override '=0.2'")
    row = report.run(report.Case("a valid dry run that was expected to fail", ["debug=smoke", "--cfg", "job"]))
    assert not row["behaves"] and row["exit"] == 0


def test_a_checkpoints_files_are_made_durable_before_its_manifest(tmp_path, monkeypatch):
    from rlhf_lab.training import checkpoint_identity
    from rlhf_lab.training.checkpoints import MANIFEST

    synced, real = [], os.fsync

    def fsync(fd):
        synced.append(os.path.realpath(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(checkpoint_identity.os, "fsync", fsync)
    folder = _checkpoint(tmp_path, 1)
    files = {str(p) for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST}
    assert files <= set(synced)  # every file, before the manifest that vouches for it
