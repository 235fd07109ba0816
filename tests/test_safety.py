"""Values that used to pass the door and do harm later, a torn metrics line on resume, an empty run directory, and
a run whose loss turns NaN: each is one line (exit 2), never a traceback or a run reported as completed."""

from __future__ import annotations

import json

import pytest
from conftest import TINY, read_summary, run_cli


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
