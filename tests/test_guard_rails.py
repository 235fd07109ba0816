"""Guard rails at the command line: a run directory holds one run, --cfg job is a dry run, mistakes get hints, and
the environment variables of the tools underneath are obeyed."""

import json
import time
from pathlib import Path

import pytest
from conftest import TINY, read_summary, run_cli, run_cli_process

from rlhf_lab.errors import ConfigError, ModelError
from rlhf_lab.runtime import fingerprint

QUICK = [*TINY, "train.max_steps=1", "train.eval=false"]


def one_error_line(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return lines[-1]


# --- a run directory belongs to one run ---------------------------------------------------------------------------


def test_another_algorithm_does_not_resume_a_run_directory(tmp_path):
    run_dir = tmp_path / "run"
    first = run_cli(["algorithm=kto", *QUICK, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = {
        p.name: p.read_bytes()
        for p in [run_dir / "summary.json", run_dir / "metrics.jsonl", run_dir / ".hydra" / "overrides.yaml"]
    }

    other = run_cli(["algorithm=dpo", *QUICK, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    line = one_error_line(other)
    assert line.startswith("config error: hydra.run.dir:") and "algorithm.name: kto -> dpo" in line, line
    assert "train.resume=never" in line and "another directory" in line
    # Nothing of the earlier run changed, not even Hydra's record of its command.
    assert {
        p: (run_dir / p if p != "overrides.yaml" else run_dir / ".hydra" / p).read_bytes() for p in before
    } == before

    # The same settings again: its checkpoint is at train.max_steps already, which is said rather than trained past.
    again = run_cli(["algorithm=kto", *QUICK, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    line = one_error_line(again)
    assert line.startswith("config error: train.max_steps: is 1 but") and "already at step 1" in line, line
    assert read_summary(run_dir)["status"] == "completed"

    # Starting over keeps the earlier run, whole, beside the new one.
    fresh = run_cli(["algorithm=dpo", *QUICK, f"hydra.run.dir={run_dir}", "train.resume=never"], cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    aside = next(run_dir.glob("before-*"))
    assert json.loads((aside / "summary.json").read_text())["algorithm"] == "kto"
    assert (aside / "summary.json").read_bytes() == before["summary.json"]
    assert (aside / "metrics.jsonl").read_bytes() == before["metrics.jsonl"]
    assert (aside / "checkpoints" / "checkpoint-1").is_dir() and (aside / "adapter").is_dir()
    summary = read_summary(run_dir)
    assert summary["algorithm"] == "dpo" and summary["resumed_from"] is None and summary["global_steps"] == 1
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert not any("kl" in r for r in records)  # KTO's metric: the new run's records are its own
    assert json.loads((run_dir / fingerprint.FILE).read_text())["settings"]["algorithm.name"] == "dpo"


def test_fingerprint_leaves_out_what_does_not_change_the_training():
    resolved = {
        "algorithm": {"name": "dpo", "beta": 0.1},
        "model": {"name_or_path": "m"},
        "tuner": {"name": "lora", "r": 8},
        "dataset": {"path": "a.jsonl"},
        "distributed": {"backend": "single", "master_port": 29500},
        "logger": {"backend": "wandb"},
        "train": {"learning_rate": 1e-4, "save_steps": 5, "max_steps": 10},
        "objective": None,
    }
    settings = fingerprint.settings(resolved)
    assert settings == {
        "algorithm.name": "dpo",
        "algorithm.beta": 0.1,
        "model.name_or_path": "m",
        "tuner.name": "lora",
        "tuner.r": 8,
        "dataset.path": "a.jsonl",
        "distributed.backend": "single",
        "train.learning_rate": 1e-4,
    }
    changed = fingerprint.settings({**resolved, "algorithm": {"name": "dpo", "beta": 0.2}, "tuner": {"name": "full"}})
    assert fingerprint.differences(settings, changed) == ["algorithm.beta: 0.1 -> 0.2", "tuner.name: lora -> full"]


def test_the_users_own_files_are_not_a_run_and_are_not_moved(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    assert not fingerprint.holds_run(tmp_path)
    fingerprint.check_same_run(tmp_path, {g: {} for g in fingerprint.GROUPS})  # nothing to compare with: no error
    (tmp_path / "summary.json").write_text("{}")
    (tmp_path / "traceback-rank1.txt").write_text("")
    aside = fingerprint.set_aside(tmp_path)
    assert sorted(p.name for p in aside.iterdir()) == ["summary.json", "traceback-rank1.txt"]
    assert (tmp_path / "notes.txt").read_text() == "mine" and (tmp_path / "data").is_dir()


def test_a_directory_with_a_run_but_no_recorded_settings_is_not_resumed(tmp_path):
    (tmp_path / "checkpoints" / "checkpoint-3").mkdir(parents=True)
    with pytest.raises(ConfigError, match="whose settings are not recorded"):
        fingerprint.check_same_run(tmp_path, {g: {} for g in fingerprint.GROUPS})
    # Only Hydra's files (or nothing): a new run may start there.
    empty = tmp_path / "new"
    (empty / ".hydra").mkdir(parents=True)
    (empty / "rlhf_lab.log").write_text("")
    fingerprint.check_same_run(empty, {g: {} for g in fingerprint.GROUPS})
    assert fingerprint.only_hydra_files(empty) and not fingerprint.only_hydra_files(tmp_path)


# --- bad input leaves no run directory; --cfg job checks what a run checks -----------------------------------------


@pytest.mark.parametrize(
    "args,expected",
    [
        (["model.torch_dtype=bf16"], "config error: model.torch_dtype: got 'bf16' (did you mean bfloat16?)"),
        (
            ["algorithm=kto", "train.per_device_train_batch_size=1"],
            "config error: train.per_device_train_batch_size: KTO estimates its KL term",
        ),
        (["dataset=custom", "dataset.path=bad.jsonl"], "data error: bad.jsonl:2: field 'rejected'"),
        (
            ["algorithm=grpo", "dataset=arith_math", "algorithm.reward_funcs=[helpers.custom_rewards:no_kwargs]"],
            "config error: algorithm.reward_funcs[0]",
        ),
        (
            ["algorithm=grpo", "dataset=arith_math", "algorithm.reward_funcs=[helpers.custom_rewards:scaled_length]"],
            "factor",
        ),
    ],
)
def test_dry_run_and_real_run_stop_on_the_same_line_and_write_nothing(tmp_path, args, expected):
    (tmp_path / "bad.jsonl").write_text(
        '{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen": "b"}\n'
    )
    env = {"PYTHONPATH": str(Path(__file__).parent)}
    dry = run_cli(["model=tiny", *args, "--cfg", "job"], cwd=tmp_path, env=env)
    line = one_error_line(dry)
    assert line.startswith(expected) or expected in line, line
    assert dry.stdout == ""  # no config printed for a config that would not run
    real = run_cli(["model=tiny", *args, "hydra.run.dir=runs/a"], cwd=tmp_path, env=env)
    assert one_error_line(real) == line
    assert not (tmp_path / "runs" / "a").exists()
    assert not (tmp_path / "outputs").exists()


def test_dry_run_passes_with_a_report_and_the_config(tmp_path):
    proc = run_cli(["model=tiny", "algorithm=grpo", "dataset=arith_math", "--cfg", "job"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "name: grpo" in proc.stdout
    assert (
        "dry run: the config checks passed; 256 training and 48 held-out rows read; would start a new run"
        in proc.stderr
    )
    assert list(tmp_path.iterdir()) == []


def test_dry_run_of_a_directory_says_where_it_would_resume(tmp_path):
    run_dir = tmp_path / "run"
    assert run_cli([*QUICK, "train.max_steps=1", f"hydra.run.dir={run_dir}"], cwd=tmp_path).returncode == 0
    dry = run_cli([*QUICK, "train.max_steps=3", f"hydra.run.dir={run_dir}", "--cfg", "job"], cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "would resume at step 1" in dry.stderr
    mismatch = run_cli(
        [*QUICK, "train.max_steps=3", "algorithm.beta=0.5", f"hydra.run.dir={run_dir}", "--cfg", "job"], cwd=tmp_path
    )
    assert "algorithm.beta: 0.1 -> 0.5" in one_error_line(mismatch)


def test_dry_run_of_a_sweep_checks_every_job(tmp_path):
    proc = run_cli(
        ["-m", "model=tiny", "algorithm=dpo,kto", "train.per_device_train_batch_size=1,2", "--cfg", "job"], cwd=tmp_path
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len([line for line in lines if line.startswith("job ")]) == 4
    assert any(
        line.startswith(
            "job 2 (model=tiny algorithm=kto train.per_device_train_batch_size=1): config error: "
            "train.per_device_train_batch_size"
        )
        for line in lines
    ), proc.stderr
    assert lines[-1] == "3 of 4 jobs pass the checks"
    assert "Traceback" not in proc.stderr and not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--cfg", "job", "--run"], "config error: --cfg and --run cannot be given together; use one of them"),
        (["-m", "--info"], "config error: --info and --multirun cannot be given together; use one of them"),
    ],
)
def test_hydra_flags_that_do_not_go_together(tmp_path, args, expected):
    assert one_error_line(run_cli(args, cwd=tmp_path)) == expected


# --- hints -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,expected",
    [
        (["beta=0.1"], "config error: unknown key 'beta' (did you mean 'algorithm.beta'?)"),
        (["learning_rate=1e-5"], "config error: unknown key 'learning_rate' (did you mean 'train.learning_rate'?)"),
        (
            ["output_dir=out"],
            "config error: unknown key 'output_dir' (rlhf_lab's equivalent of ms-swift's --output_dir: "
            "hydra.run.dir=DIR",
        ),
        (["lora_rank=4"], "(rlhf_lab's equivalent of ms-swift's --lora_rank: tuner.r=...)"),
        (
            ["deepspeed=zero3"],
            "(rlhf_lab's equivalent of ms-swift's --deepspeed: distributed=zero2|zero3|zero3_offload)",
        ),
        (
            ["model=Qwen/Qwen3-8B"],
            "config error: unknown option 'Qwen/Qwen3-8B' for model; a hub id or a local checkpoint "
            "is set with model=custom model.name_or_path=Qwen/Qwen3-8B; choose one of: custom,",
        ),
        (["dataset=/data/pairs.jsonl"], "dataset=custom dataset.path=/data/pairs.jsonl"),
        (
            ["algorithm=gkd", "dataset=arith_chat", "algorithm.teacher_model=qwen9"],
            "config error: algorithm.teacher_model: 'qwen9' is not a model preset, a local directory or a hub id; "
            "presets: "
            "qwen2_5_vl_7b, qwen3_4b, qwen3_8b, qwen3_vl_8b, smollm2_135m, tiny, tiny_vl",
        ),
        (
            ["--rlhf_type", "dpo"],
            "config error: --rlhf_type is not a flag of rlhf_lab, which takes key=value overrides; "
            "rlhf_lab writes it as algorithm=NAME",
        ),
        (["--output_dir=out"], "rlhf_lab writes it as hydra.run.dir=DIR"),
    ],
)
def test_hints_for_the_obvious_mistakes(tmp_path, args, expected):
    line = one_error_line(run_cli([*args, "--cfg", "job"], cwd=tmp_path))
    assert line.startswith(expected) or expected in line, line
    assert not (tmp_path / "outputs").exists()


# --- the launcher's environment ------------------------------------------------------------------------------------


def test_nproc_per_node_in_the_environment_fills_distributed(tmp_path):
    proc = run_cli(["model=tiny", "--cfg", "job"], cwd=tmp_path, env={"NPROC_PER_NODE": "4", "MASTER_PORT": "29600"})
    assert proc.returncode == 0, proc.stderr
    assert "backend: ddp" in proc.stdout and "nproc_per_node: 4" in proc.stdout and "master_port: 29600" in proc.stdout
    same = run_cli(
        ["model=tiny", "distributed=zero2", "distributed.nproc_per_node=4", "--cfg", "job"],
        cwd=tmp_path,
        env={"NPROC_PER_NODE": "4"},
    )
    assert same.returncode == 0 and "zero_stage: 2" in same.stdout


@pytest.mark.parametrize(
    "args,env,expected",
    [
        (
            ["distributed=ddp", "distributed.nproc_per_node=2"],
            {"NPROC_PER_NODE": "4"},
            "config error: distributed.nproc_per_node: is 2 on the command line but NPROC_PER_NODE=4 in the "
            "environment; "
            "make them agree, or unset NPROC_PER_NODE",
        ),
        (
            ["distributed=single"],
            {"NPROC_PER_NODE": "2"},
            "config error: distributed: is single (one process) but NPROC_PER_NODE/NNODES",
        ),
        (
            [],
            {"NPROC_PER_NODE": "four"},
            "config error: distributed.nproc_per_node: NPROC_PER_NODE=four in the environment is not a whole number",
        ),
    ],
)
def test_environment_that_disagrees_is_an_error(tmp_path, args, env, expected):
    assert one_error_line(run_cli(["model=tiny", *args, "--cfg", "job"], cwd=tmp_path, env=env)).startswith(expected)


# --- defaults follow the model -------------------------------------------------------------------------------------


def test_model_presets_carry_their_own_training_defaults(compose, tmp_path):
    from rlhf_lab.config.run import build_run

    demo = build_run(compose([]), tmp_path).train
    assert demo.learning_rate == 5e-4 and demo.per_device_train_batch_size == 4
    big = build_run(compose(["model=qwen3_8b", "algorithm=kto"]), tmp_path).train
    assert big.learning_rate == 1e-4  # ms-swift's LoRA rate, not the demo's
    assert (
        big.per_device_train_batch_size,
        big.gradient_accumulation_steps,
        big.max_length,
        big.gradient_checkpointing,
    ) == (2, 8, 2048, True)
    custom = build_run(compose(["model=custom", "model.name_or_path=org/m"]), tmp_path).train
    assert custom.learning_rate == 1e-4 and custom.per_device_train_batch_size == 4
    # The command line still wins.
    assert build_run(compose(["model=qwen3_8b", "train.learning_rate=2e-5"]), tmp_path).train.learning_rate == 2e-5


# --- the tools' own switches: wandb and the Hub ----------------------------------------------------------------------


@pytest.fixture
def clean_wandb_env(monkeypatch):
    for var in ("WANDB_MODE", "WANDB_DISABLED", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", "/nonexistent")
    monkeypatch.setenv("HOME", "/nonexistent")
    return monkeypatch


def test_wandb_mode_obeys_the_environment(clean_wandb_env):
    from rlhf_lab.runtime.reachability import wandb_mode

    env = clean_wandb_env
    env.setenv("WANDB_API_KEY", "x" * 40)
    env.setenv("WANDB_MODE", "offline")
    assert wandb_mode("auto") == "offline"  # the key alone used to make it online
    env.setenv("WANDB_MODE", "disabled")
    assert wandb_mode("auto") == "disabled"
    env.delenv("WANDB_MODE")
    env.setenv("WANDB_DISABLED", "true")
    assert wandb_mode("auto") == "disabled"
    env.delenv("WANDB_DISABLED")
    env.delenv("WANDB_API_KEY")
    assert wandb_mode("auto") == "offline"
    assert wandb_mode("offline") == "offline"


def test_an_unreachable_wandb_server_is_one_line_quickly(clean_wandb_env, caplog):
    from rlhf_lab.runtime.reachability import wandb_mode

    env = clean_wandb_env
    env.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # the discard port: nothing listens
    start = time.time()
    with pytest.raises(
        ConfigError,
        match=r"logger.mode: wandb is to log online but http://127.0.0.1:9 cannot be "
        r"reached .*WANDB_MODE=offline",
    ):
        wandb_mode("online")
    env.setenv("WANDB_MODE", "online")
    with pytest.raises(ConfigError, match="cannot be reached"):
        wandb_mode("auto")
    env.delenv("WANDB_MODE")
    # auto chose online (an API key): offline, said once.
    env.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode("auto") == "offline"
    assert "logging offline" in caplog.text
    assert time.time() - start < 10


def test_a_hub_model_offline_and_not_cached_is_one_line(tmp_path):
    # huggingface_hub reads these variables when it is imported: a process of its own.
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    start = time.time()
    proc = run_cli_process(["model=qwen3_8b", "--cfg", "job"], cwd=tmp_path, env=env)
    line = one_error_line(proc)
    assert (
        line.startswith("model error: model.name_or_path: Qwen/Qwen3-8B is not in the local Hugging Face cache")
        and "HF_HUB_OFFLINE" in line
    ), line
    assert time.time() - start < 10
    real = run_cli_process(["model=qwen3_8b", "hydra.run.dir=runs/a"], cwd=tmp_path, env=env)
    assert one_error_line(real) == line and not (tmp_path / "runs" / "a").exists()


def test_a_cached_hub_model_needs_no_network(tmp_path, monkeypatch):
    from rlhf_lab.runtime.reachability import check_hub_model

    # A hub cache laid out as huggingface_hub writes it, holding the model's config.
    snapshot = tmp_path / "hub" / "models--org--m" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "hub" / "models--org--m" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--m" / "refs" / "main").write_text("abc")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    check_hub_model("org/m", "model.name_or_path")
    with pytest.raises(ModelError, match="org/other is not in the local Hugging Face cache"):
        check_hub_model("org/other", "model.name_or_path")


def test_the_hydra_flag_table_is_hydras_own():
    # hydra._internal: the parser Hydra's main builds; a Hydra upgrade that adds or renames a flag fails here.
    from hydra._internal.utils import get_args_parser

    from rlhf_lab.cli.hydra_flags import HYDRA_FLAGS, VALUE_FLAGS

    actions = get_args_parser()._actions
    assert {o for a in actions for o in a.option_strings} == HYDRA_FLAGS
    takes_value = {
        o for a in actions if a.option_strings and a.nargs is None and a.const is None for o in a.option_strings
    }
    assert takes_value >= VALUE_FLAGS
