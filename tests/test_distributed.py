"""Two worker processes on CPU (gloo): DDP, DeepSpeed ZeRO-2 and ZeRO-3 through the CLI's own launch, one run
directory and summary, the same numbers as one process, and a failing worker reported with its rank."""

import json
import math
import os
import socket
from pathlib import Path

import pytest
import torch
from conftest import TINY, read_summary, run_cli, run_cli_process

pytestmark = pytest.mark.distributed
TESTS = str(Path(__file__).resolve().parent)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def only_run_dir(tmp_path):
    (run_dir,) = (tmp_path / "outputs" / "runs").iterdir()
    return run_dir


GRPO = ["algorithm=grpo", "dataset=arith_math", "algorithm.num_generations=2", "algorithm.max_completion_length=8"]
PPO = ["algorithm=ppo", "dataset=arith_math", "algorithm.reward_funcs=[accuracy]", "algorithm.max_completion_length=8"]
VISION = ["model=tiny_vl", "dataset=shapes"]


@pytest.mark.parametrize(
    "backend,extra",
    [("ddp", GRPO), ("zero2", []), ("zero2", GRPO), ("zero3", []), ("fsdp", []), ("ddp", PPO), ("ddp", VISION)],
    ids=["ddp-grpo", "zero2-dpo", "zero2-grpo", "zero3-dpo", "fsdp-dpo", "ddp-ppo", "ddp-dpo-images"],
)
def test_two_processes_train_into_one_run_directory(tmp_path, backend, extra):
    proc = run_cli(
        [
            *TINY,
            *extra,
            f"distributed={backend}",
            f"distributed.master_port={free_port()}",
            "train.eval=false",
            "logger=wandb",
        ],
        tmp_path,
        env={"WANDB_MODE": "offline"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = only_run_dir(tmp_path)
    summary = read_summary(run_dir)
    assert summary["status"] == "completed" and summary["global_steps"] == 2
    # DPO and PPO: 2 steps x 2 rows per process x 2 processes = all 8 rows (one process would be half way).
    # GRPO: 2 answers per process are one prompt's group, so 2 steps x 2 processes = 4 of the 8 prompts.
    assert summary["final_train_metrics"]["epoch"] == pytest.approx(0.5 if extra is GRPO else 1.0)
    from safetensors.torch import load_file

    weights = load_file(run_dir / "adapter" / "adapter_model.safetensors")
    # ZeRO-3 and FSDP shard parameters: the saved adapter must hold the gathered, full-size tensors.
    assert weights and all(t.numel() > 0 for t in weights.values())
    assert not list(run_dir.glob(".adapter.partial"))
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1  # one wandb run, from the main process


def test_ddp_gives_the_numbers_of_one_process_with_the_same_global_batch(tmp_path):
    # Two rows, so each step sees both whatever the sampler's order: 1 process x batch 2 vs 2 processes x batch 1.
    common = [
        *TINY,
        "dataset.max_samples=2",
        "train.eval=false",
        "train.lr_scheduler_type=constant",
        "train.warmup_ratio=0",
        "train.learning_rate=1e-2",
        "train.bf16=false",
    ]  # compared in fp32
    one = run_cli([*common, "train.per_device_train_batch_size=2", f"hydra.run.dir={tmp_path}/one"], tmp_path)
    two = run_cli(
        [
            *common,
            "train.per_device_train_batch_size=1",
            "distributed=ddp",
            f"distributed.master_port={free_port()}",
            f"hydra.run.dir={tmp_path}/two",
        ],
        tmp_path,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    assert two.returncode == 0, two.stderr[-3000:]

    def losses(run):
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [r["loss"] for r in map(json.loads, lines) if "loss" in r]

    l1, l2 = losses("one"), losses("two")
    # Step 1: policy == reference (LoRA starts as the identity), the loss is log 2 in both.
    assert l1[0] == pytest.approx(math.log(2), abs=1e-6) and l2[0] == pytest.approx(math.log(2), abs=1e-6)
    # Step 2 depends on the first update, i.e. on the gradient averaged over both rows: the same in both runs
    # up to float summation order (fp32: differences of 1e-7 relative).
    assert l2[1] == pytest.approx(l1[1], rel=1e-5)
    from safetensors.torch import load_file

    a = load_file(tmp_path / "one" / "adapter" / "adapter_model.safetensors")
    b = load_file(tmp_path / "two" / "adapter" / "adapter_model.safetensors")
    diff = torch.cat([(a[k] - b[k]).abs().flatten() for k in a])
    # Measured: mean 8e-9, 99th percentile 3e-8, 8 of 16384 weights above 1e-6 (max 7e-5). Adam divides by the
    # gradient's magnitude, so weights whose gradient is nearly 0 amplify float summation-order noise. Without
    # the gradient average each process would step on its own row and most weights would differ by ~lr = 1e-2.
    assert (diff > 1e-6).float().mean() < 1e-3 and diff.max() < 1e-3, (diff.max(), (diff > 1e-6).sum())
    assert any(a[k].abs().max() > 1e-3 for k in a)  # and the weights did move


def ddp_run_scored_by(reward, tmp_path, runner=run_cli):
    """A two-process GRPO run whose reward is one of tests/helpers/custom_rewards.py's."""
    args = [
        *TINY,
        *GRPO,
        f"algorithm.reward_funcs=[helpers.custom_rewards.{reward}]",
        "distributed=ddp",
        f"distributed.master_port={free_port()}",
        "train.eval=false",
    ]
    return runner(args, tmp_path, env={"PYTHONPATH": TESTS})


def test_a_failing_worker_fails_the_run_with_its_rank(tmp_path):
    # A process of its own: the workers' output (torchrun's table of exit codes) is part of what is checked.
    proc = ddp_run_scored_by("fails_on_rank_one", tmp_path, runner=run_cli_process)
    assert proc.returncode == 2, proc.stderr[-3000:]
    summary = read_summary(only_run_dir(tmp_path))
    assert summary["status"] == "failed" and summary["rank"] == 1
    assert "fails_on_rank_one" in summary["error"] and "this worker cannot score" in summary["error"]
    assert proc.stderr.strip().splitlines()[-1] == summary["error"]
    # Rank 0 lost its peer, then got torchrun's SIGTERM: it still left its own report and exit code.
    report = json.loads((only_run_dir(tmp_path) / ".launch" / "error-rank0.json").read_text())
    assert "Connection closed by peer" in report["error"]
    assert "rank      : 0 (local_rank: 0)\n  exitcode  : 1 " in proc.stderr, proc.stderr[-3000:]


def test_a_failing_worker_ignores_the_stop_that_follows_its_failure():
    import subprocess
    import sys

    code = (
        "import os, signal, sys\n"
        "from rlhf_lab.runtime.interrupts import STOP, stop_signals\n"
        "with stop_signals():\n"
        "    STOP.ignore()\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"  # still ignored once the watch has ended
        "sys.exit(3)\n"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 3


def test_a_worker_that_dies_without_a_word_fails_the_run_with_its_rank(tmp_path):
    # torchrun then stops the other rank with SIGTERM: that is not the user's stop, and the run is not resumable.
    proc = ddp_run_scored_by("dies_on_rank_one", tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    summary = read_summary(only_run_dir(tmp_path))
    assert summary["status"] == "failed" and summary["rank"] == 1, summary
    assert summary["error"].startswith("rank 1 ended without a report"), summary["error"]


@pytest.mark.parametrize("named", [False, True], ids=["default-dir", "named-dir"])
def test_started_under_torchrun_gives_the_same_single_run_directory(tmp_path, named):
    import subprocess
    import sys

    # named: every process is given the directory, which the main one locks while the others still check it.
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
        "-m",
        "rlhf_lab",
        *TINY,
        "distributed=ddp",
        "train.eval=false",
        "logger=wandb",
        *([f"hydra.run.dir={tmp_path}/outputs/runs/named"] if named else []),
    ]
    proc = subprocess.run(
        cmd,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = only_run_dir(tmp_path)  # both processes agreed on one directory
    summary = read_summary(run_dir)
    assert summary["status"] == "completed" and summary["final_train_metrics"]["epoch"] == pytest.approx(1.0)
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1  # one wandb run, from the main process


def test_a_launcher_world_that_disagrees_with_the_config_is_a_config_error(tmp_path):
    import subprocess
    import sys

    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
        "-m",
        "rlhf_lab",
        *TINY,
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "config error: distributed: the launcher started 2 processes but distributed=single" in proc.stderr


def test_a_merged_lora_reward_model_with_sharded_weights_is_refused(compose, tmp_path):
    from rlhf_lab.config.run import build_run
    from rlhf_lab.errors import ConfigError

    for backend in ("zero3", "fsdp"):
        with pytest.raises(ConfigError, match="algorithm=rm with tuner=lora saves the adapter merged"):
            build_run(compose(["algorithm=rm", f"distributed={backend}"]), tmp_path)
    build_run(compose(["algorithm=rm", "distributed=zero2"]), tmp_path)
    build_run(compose(["algorithm=rm", "distributed=zero3", "tuner=full"]), tmp_path)


def test_zero2_resumes_its_own_signed_checkpoint(tmp_path):
    # DeepSpeed unpickles checkpoints, so resuming checks the manifest's signature and every file's hash first.
    # Rank 1 writes its part late: the manifest must still list it.
    run_dir = tmp_path / "run"
    common = [*TINY, "distributed=zero2", "train.eval=false", "train.save_steps=1", f"hydra.run.dir={run_dir}"]
    slow = {"PYTHONPATH": str(Path(TESTS) / "helpers" / "slow_second_rank")}
    first = run_cli([*common, f"distributed.master_port={free_port()}"], tmp_path, env=slow)
    assert first.returncode == 0, first.stderr[-3000:]
    checkpoint = run_dir / "checkpoints" / "checkpoint-2"
    manifest = json.loads((checkpoint / "rlhf_lab_checkpoint.json").read_text())
    assert any(name.endswith("model_states.pt") for name in manifest["sha256"]) and manifest["signature"]
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= set(manifest["sha256"])
    assert manifest["run_id"] == json.loads((run_dir / "run_fingerprint.json").read_text())["run_id"]
    again = run_cli([*common, "train.max_steps=3", f"distributed.master_port={free_port()}"], tmp_path, env=slow)
    assert again.returncode == 0, again.stderr[-3000:]
    summary = read_summary(run_dir)
    assert summary["global_steps"] == 3 and summary["resumed_from"].endswith("checkpoint-2")


@pytest.mark.parametrize("backend", ["zero2", "fsdp"])
def test_an_engine_that_needs_a_process_group_runs_with_one_process(tmp_path, backend):
    # ZeRO-3 offload on one GPU is a common way to fit a large model: one worker, started by the launcher.
    run_dir = tmp_path / "run"
    proc = run_cli(
        [
            *TINY,
            f"distributed={backend}",
            "distributed.nproc_per_node=1",
            "train.eval=false",
            f"hydra.run.dir={run_dir}",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_summary(run_dir)["global_steps"] == 2


# ---- how a launch ended, read from what its workers left ----


def write_report(folder, rank, error="", interrupted=None, user_error=False):
    report = {"rank": rank, "user_error": user_error, "traceback": None, "error": error}
    if interrupted:
        report["interrupted"] = {"signal": "SIGTERM", "checkpoint": interrupted, "exit_code": 143}
    (folder / f"error-rank{rank}.json").write_text(json.dumps(report))


def test_the_launch_outcome_names_the_rank_that_died_without_a_word(tmp_path):
    import signal

    from rlhf_lab.errors import Interrupted
    from rlhf_lab.runtime.interrupts import STOP
    from rlhf_lab.runtime.launch import RESULT_FILE, WorkerFailed, WorkerUserError, workers_outcome

    (tmp_path / RESULT_FILE).write_text(json.dumps({"status": "completed"}))
    assert workers_outcome(tmp_path, 0, range(2)) == {"status": "completed"}
    (tmp_path / RESULT_FILE).unlink()

    # rank 1 died silently; torchrun's SIGTERM stopped rank 0: the run failed, on rank 1
    STOP.received = None
    write_report(tmp_path, 0, "stopped by SIGTERM", interrupted="/c/checkpoint-3")
    with pytest.raises(WorkerFailed) as failed:
        workers_outcome(tmp_path, 1, range(2))
    assert failed.value.rank == 1 and str(failed.value).startswith("rank 1 ended without a report")
    # ... unless the user stopped this run: then it is theirs, with rank 0's checkpoint
    STOP.received = signal.SIGTERM
    try:
        with pytest.raises(Interrupted) as stopped:
            workers_outcome(tmp_path, 1, range(2))
        assert stopped.value.checkpoint == "/c/checkpoint-3"
    finally:
        STOP.received = None
    # bad input on rank 0, then torchrun's SIGTERM on rank 1: the bad input is the run's end, not a stop
    write_report(tmp_path, 0, "config error: x", user_error=True)
    write_report(tmp_path, 1, "stopped by SIGTERM", interrupted="/c/checkpoint-3")
    with pytest.raises(WorkerUserError) as bad:
        workers_outcome(tmp_path, 1, range(2))
    assert bad.value.rank == 0 and bad.value.one_line() == "config error: x"
    (tmp_path / "error-rank0.json").unlink()
    # rank 1's bad input, and rank 0 dead without a word (torchrun's stop, or a kill): the bad input is the cause
    write_report(tmp_path, 1, "config error: y", user_error=True)
    with pytest.raises(WorkerUserError) as bad:
        workers_outcome(tmp_path, 1, range(2))
    assert bad.value.rank == 1
    (tmp_path / "error-rank1.json").unlink()
    # no report at all: nothing says a worker even started (torchrun's own failure is in its output)
    with pytest.raises(WorkerFailed, match="exited with code 1 without reporting"):
        workers_outcome(tmp_path, 1, range(2))
    # on another node of the run, ranks 0 and 1 are not this launcher's to miss
    write_report(tmp_path, 2, "RuntimeError: lost peer")
    write_report(tmp_path, 3, "ValueError: bad batch")
    os.utime(tmp_path / "error-rank3.json", (1, 1))
    with pytest.raises(WorkerFailed) as failed:
        workers_outcome(tmp_path, 1, range(2, 4))
    assert str(failed.value) == "rank 3: ValueError: bad batch"  # the earliest report
    # a rank that crashed silently while another reported the lost peer: both are said, the silent one first
    for p in tmp_path.glob("error-rank*.json"):
        p.unlink()
    write_report(tmp_path, 0, "RuntimeError: Connection closed by peer")
    with pytest.raises(WorkerFailed) as failed:
        workers_outcome(tmp_path, 1, range(2))
    assert failed.value.rank == 1
    assert str(failed.value).endswith("rank 0 then reported: RuntimeError: Connection closed by peer")


def test_a_finished_worker_leaves_its_process_group(tmp_path):
    import torch.distributed as dist

    from rlhf_lab.runtime.ranks import leave_group

    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    assert dist.is_initialized()
    leave_group()
    assert not dist.is_initialized()
    leave_group()  # nothing left to leave


def test_leaving_a_group_never_imports_torch():
    import subprocess
    import sys

    code = "import sys; from rlhf_lab.runtime.ranks import leave_group; leave_group(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
