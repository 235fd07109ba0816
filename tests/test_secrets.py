"""Secrets stay secret: a value read from the environment (${oc.env:...}) or held by a field named like a credential
is masked in every record a run writes (summary.json, the fingerprint, Hydra's job log, the run name, TRL's
training_args.bin, wandb's files, the console), while the object that uses it still receives the real value."""

from __future__ import annotations

import hashlib
import json
import secrets as stdlib_secrets
from pathlib import Path

import pytest
from conftest import GRPO_TINY, read_summary, run_cli
from omegaconf import OmegaConf

from rlhf_lab.config.secrets import MASK, find_secrets, is_credential_name, mask_overrides, mask_resolved, restored
from rlhf_lab.paths import cache_dir

ENV_NAME = "RLHF_LAB_TEST_SECRET"


@pytest.mark.parametrize(
    "name",
    ["api_key", "hf_token", "access_token", "token", "HF_TOKEN", "apiKey", "X-Api-Key", "client_secret", "secret"]
    + ["password", "db_password", "Authorization", "basic_auth", "credentials", "algorithm.reward_funcs.0.api_key"],
)
def test_names_that_mark_a_credential(name):
    assert is_credential_name(name)


@pytest.mark.parametrize(
    "name",
    ["api_key_env", "max_tokens", "max_new_tokens", "num_tokens", "tokenizer", "token_id", "lazy_tokenize", "keys"]
    + ["key_column", "reward_funcs", "pad_token", "eos_token", "monkey", "keyword", "name", "hydra.run.dir", ""],
)
def test_innocuous_names_are_kept(name):
    assert not is_credential_name(name)


def test_values_from_the_environment_and_credentials_are_masked_and_the_config_keeps_them(monkeypatch):
    monkeypatch.setenv("SOME_KEY", "s3cr3t-value")
    monkeypatch.setenv("SOME_PIN", "31337")
    cfg = OmegaConf.create(
        {
            "algorithm": {
                "reward_funcs": [
                    "accuracy",
                    {"_target_": "m.Judge", "api_key": "${oc.env:SOME_KEY}", "max_tokens": 16, "record": "/tmp/r"},
                ],
                "endpoint": "${oc.env:SOME_KEY}",  # an innocuous name, read from the environment
                "header": "Bearer ${oc.env:SOME_KEY}",
                "copy": "${algorithm.endpoint}",  # the environment's value, one interpolation away
                "decoded": "${oc.decode:${oc.env:SOME_PIN}}",  # the int 31337
                "hf_token": "hf_literal",
                "headers": {"Authorization": "Bearer literal", "Accept": "json"},
                "api_key_env": "JUDGE_API_KEY",
                "password": None,
                "beta": 0.1,
                "run": "${algorithm.beta}",
            }
        }
    )
    masked = mask_resolved(cfg)["algorithm"]
    assert masked["reward_funcs"] == [
        "accuracy",
        {"_target_": "m.Judge", "api_key": MASK, "max_tokens": 16, "record": "/tmp/r"},
    ]
    # Read from the environment under other names: recorded as written, so a rebuilt run resolves them again.
    assert masked["endpoint"] == "${oc.env:SOME_KEY}" and masked["header"] == "Bearer ${oc.env:SOME_KEY}"
    assert masked["copy"] == "${algorithm.endpoint}" and masked["decoded"] == "${oc.decode:${oc.env:SOME_PIN}}"
    assert masked["hf_token"] == MASK and masked["headers"] == {"Authorization": MASK, "Accept": "json"}
    # Names of variables, empty values and other settings (interpolated ones too) stay readable.
    assert masked["api_key_env"] == "JUDGE_API_KEY" and masked["password"] is None
    assert masked["beta"] == masked["run"] == 0.1
    # The config the objects are built from still resolves to the real values.
    assert OmegaConf.to_container(cfg, resolve=True)["algorithm"]["reward_funcs"][1]["api_key"] == "s3cr3t-value"
    # A worker process gets the masked config and the real values apart, and puts them back.
    resolved = OmegaConf.to_container(cfg, resolve=True)
    found = find_secrets(cfg, resolved)
    assert ("algorithm", "reward_funcs", 1, "api_key") in [place for place, _ in found]
    assert restored(mask_resolved(cfg), found) == resolved


def test_overrides_are_kept_as_typed_with_literal_credentials_masked():
    typed = [
        "algorithm.beta=0.1",
        "algorithm.reward_funcs.0.api_key=sk-literal",
        "+logger.hf_token='sk-literal'",
        "algorithm.reward_funcs.0.api_key=${oc.env:JUDGE_KEY}",
        "algorithm.api_key_env=JUDGE_KEY",
        "algorithm.reward_funcs=[accuracy,{_target_: m.Judge, api_key: sk-literal, max_tokens: 16}]",
        "algorithm.reward_funcs=[{_target_: m.Judge, headers: {Authorization: 'Bearer sk-literal'}, api_key: null}]",
        "algorithm.reward_funcs=[{_target_: m.Judge, api_key: '${oc.env:JUDGE_KEY}'}]",
    ]
    assert mask_overrides(typed) == (
        "algorithm.beta=0.1",
        "algorithm.reward_funcs.0.api_key=***",
        "+logger.hf_token=***",
        "algorithm.reward_funcs.0.api_key=${oc.env:JUDGE_KEY}",
        "algorithm.api_key_env=JUDGE_KEY",
        "algorithm.reward_funcs=[accuracy,{_target_: m.Judge, api_key: ***, max_tokens: 16}]",
        "algorithm.reward_funcs=[{_target_: m.Judge, headers: {Authorization: ***}, api_key: null}]",
        "algorithm.reward_funcs=[{_target_: m.Judge, api_key: '${oc.env:JUDGE_KEY}'}]",
    )


def test_the_run_records_the_masked_config_and_builds_with_the_real_one(compose, tmp_path, monkeypatch):
    from rlhf_lab.config.run import build_run
    from rlhf_lab.config.store import typed_config

    monkeypatch.setenv(ENV_NAME, "s3cr3t-value")
    reward = (
        "algorithm.reward_funcs=[{_target_: helpers.custom_rewards.KeyedReward, "
        f"api_key: '${{oc.env:{ENV_NAME}}}', record: x}}]"
    )
    overrides = [*GRPO_TINY, reward]
    run = build_run(compose(overrides), tmp_path / "run", overrides=tuple(overrides))
    assert run.resolved["algorithm"]["reward_funcs"][0]["api_key"] == MASK
    assert run.algorithm.reward_funcs[0]["api_key"] == "s3cr3t-value"
    assert "s3cr3t-value" not in run.name and reward in run.overrides
    # A worker process builds the same Run from the masked file and the values its launcher passed on.
    config = typed_config(restored(run.resolved, run.secrets))
    worker = build_run(config, tmp_path / "run", check_dir=False, secret_places=tuple(p for p, _ in run.secrets))
    assert worker.resolved["algorithm"] == run.resolved["algorithm"]
    assert worker.algorithm.reward_funcs[0]["api_key"] == "s3cr3t-value"


def _files_holding(root: Path, needle: bytes) -> list[str]:
    """Every file under root (binary ones too) whose bytes contain needle."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes())


@pytest.mark.parametrize("logger", ["wandb", "tensorboard"])
def test_a_secret_from_the_environment_reaches_the_reward_and_no_record(tmp_path, tiny_model_dir, logger):
    secret = "sk-" + stdlib_secrets.token_hex(16)
    run, record = tmp_path / "run", tmp_path / "received.txt"
    reward = (
        "algorithm.reward_funcs=[{_target_: helpers.custom_rewards.KeyedReward, "
        f"api_key: '${{oc.env:{ENV_NAME}}}', record: '{record}'}}]"
    )
    env = {
        ENV_NAME: secret,
        "WANDB_MODE": "offline",
        "WANDB_API_KEY": "",
        "HOME": str(tmp_path),
        "RLHF_LAB_CACHE": str(cache_dir()),
    }
    proc = run_cli([*GRPO_TINY, reward, f"logger={logger}", f"hydra.run.dir={run}"], cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The reward scored with the real key.
    assert record.read_text() == hashlib.sha256(secret.encode()).hexdigest()
    # Nothing the run wrote holds it: records, logs, the trainer's arguments, wandb's files.
    assert list(run.rglob("training_args.bin")) and list(run.rglob("*.wandb" if logger == "wandb" else "events.*"))
    assert (run / ".hydra" / "config.yaml").is_file() and (run / "rlhf_lab.log").is_file()
    assert _files_holding(tmp_path, secret.encode()) == []
    assert secret not in proc.stdout and secret not in proc.stderr
    # The records keep the overrides as typed, and show that a value was there.
    summary = read_summary(run)
    assert reward in summary["overrides"]
    fingerprint = json.loads((run / "run_fingerprint.json").read_text())["settings"]
    assert fingerprint["algorithm.reward_funcs"][0]["api_key"] == "***"


def test_a_credential_typed_literally_in_a_sweep_reaches_the_reward_and_no_record(tmp_path, tiny_model_dir):
    # Not the recommended way (api_key_env, ${oc.env:...}), but a typed key must not be left in Hydra's own files
    # (.hydra/*.yaml, multirun.yaml), its launcher's log line, wandb's record of the command line or the console.
    secret = "sk-" + stdlib_secrets.token_hex(16)
    sweep, record = tmp_path / "sweep", tmp_path / "received.txt"
    reward = (
        "algorithm.reward_funcs=[{_target_: helpers.custom_rewards.KeyedReward, "
        f"api_key: {secret}, record: '{record}'}}]"
    )
    env = {"WANDB_MODE": "offline", "WANDB_API_KEY": "", "HOME": str(tmp_path), "RLHF_LAB_CACHE": str(cache_dir())}
    args = ["-m", *GRPO_TINY, reward, "logger=wandb", f"hydra.sweep.dir={sweep}"]
    proc = run_cli(args, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert record.read_text() == hashlib.sha256(secret.encode()).hexdigest()
    assert (sweep / "multirun.yaml").is_file() and (sweep / "0" / ".hydra" / "overrides.yaml").is_file()
    assert list(sweep.rglob("*.wandb"))
    assert _files_holding(tmp_path, secret.encode()) == []
    assert secret not in proc.stdout and secret not in proc.stderr
    overrides = (sweep / "0" / ".hydra" / "overrides.yaml").read_text()
    assert "api_key:***" in overrides.replace(" ", "")  # the override kept, its key masked


@pytest.mark.distributed
def test_worker_processes_receive_the_secret_and_record_it_masked(tmp_path, tiny_model_dir):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    secret = "sk-" + stdlib_secrets.token_hex(16)
    run, record = tmp_path / "run", tmp_path / "received.txt"
    reward = (
        "algorithm.reward_funcs=[{_target_: helpers.custom_rewards.KeyedReward, "
        f"api_key: '${{oc.env:{ENV_NAME}}}', record: '{record}'}}]"
    )
    args = [*GRPO_TINY, "train.per_device_train_batch_size=2", reward, "distributed=ddp", "train.eval=false"]
    proc = run_cli(
        [*args, f"distributed.master_port={port}", f"hydra.run.dir={run}"],
        cwd=tmp_path,
        env={ENV_NAME: secret, "PYTHONPATH": str(Path(__file__).resolve().parent)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert record.read_text() == hashlib.sha256(secret.encode()).hexdigest()
    # The workers' config file (.launch/) included.
    assert _files_holding(tmp_path, secret.encode()) == []
    assert secret not in proc.stdout and secret not in proc.stderr
