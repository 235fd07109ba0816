"""The recipes in conf/experiment/ (experiment=<name>): each composes, equals the README's command it stands for, and
leaves the command line the last word. Config only: nothing loads a model or reads data."""

import re
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rlhf_lab.config.run import build_run
from rlhf_lab.paths import CONF_DIR

EXPERIMENTS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))
README = Path(CONF_DIR).parent / "README.md"

GRPO_CPU = [
    "algorithm.num_generations=4",
    "algorithm.max_completion_length=40",
    "algorithm.temperature=0.5",
    "train.per_device_train_batch_size=8",
    "train.gradient_accumulation_steps=1",
    "train.learning_rate=5e-4",
]
# Each experiment is the command it replaced in the README (hydra.run.dir aside: see the rm_demo test).
RECIPES = {
    "dpo_demo": [],
    "grpo_demo": ["algorithm=grpo", "dataset=arith_math", *GRPO_CPU, "train.max_steps=24"],
    "dapo_demo": [
        "algorithm=dapo",
        "dataset=arith_math",
        *GRPO_CPU,
        "algorithm.soft_cache_length=10",
        "train.max_steps=24",
    ],
    "grpo_tools_demo": [
        "algorithm=grpo",
        "dataset=arith_math",
        *GRPO_CPU,
        "algorithm.reward_funcs=[accuracy]",
        "algorithm.environment={_target_:rlhf_lab.tools.calculator.CalculatorEnvironment}",
        "algorithm.max_turns=3",
        "algorithm.max_completion_length=96",
        "train.max_steps=24",
    ],
    "sapo_demo": ["algorithm=sapo", "dataset=arith_math", *GRPO_CPU, "train.max_steps=24"],
    "cispo_demo": ["algorithm=cispo", "dataset=arith_math", *GRPO_CPU, "train.max_steps=40"],
    "gkd_demo": [
        "algorithm=gkd",
        "algorithm.teacher_model=smollm2_135m",
        "model.num_hidden_layers=20",
        "tuner=full",
        "dataset=arith_chat",
        "algorithm.max_completion_length=32",
        "train.learning_rate=5e-5",
        "train.max_steps=30",
    ],
    "rm_demo": ["algorithm=rm", "dataset=word_pairs", "train.num_train_epochs=1", "train.learning_rate=1e-3"],
    "ppo_demo": [
        "algorithm=ppo",
        "algorithm.reward_model=outputs/rm_demo/model",
        "dataset=arith_math",
        "algorithm.max_completion_length=32",
        "algorithm.temperature=0.7",
        "train.per_device_train_batch_size=8",
        "train.gradient_accumulation_steps=1",
        "train.max_steps=20",
        "train.learning_rate=2e-4",
    ],
    "kto_demo": [
        "algorithm=kto",
        "algorithm.beta=0.3",
        "train.num_train_epochs=2",
        "train.learning_rate=2e-4",
    ],
    "cpo_demo": ["algorithm=cpo", "algorithm.cpo_alpha=0.5"],
    "simpo_demo": ["algorithm=simpo", "algorithm.simpo_gamma=0.5"],
    "orpo_demo": ["algorithm=orpo", "algorithm.beta=0.2"],
}


def compose(overrides=(), conf_dir=CONF_DIR, with_hydra=False):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from rlhf_lab.config import register_schemas

    register_schemas()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(str(conf_dir), version_base="1.3", job_name="test"):
            return hydra_compose("config", overrides=list(overrides), return_hydra_config=with_hydra)
    finally:
        GlobalHydra.instance().clear()


def plain(cfg):
    return OmegaConf.to_container(cfg, resolve=False)


def test_every_experiment_has_a_recipe_here_and_in_the_readme():
    assert sorted(RECIPES) == EXPERIMENTS
    readme = README.read_text()
    for name in EXPERIMENTS:
        text = (Path(CONF_DIR) / "experiment" / f"{name}.yaml").read_text().splitlines()
        assert text[0] == "# @package _global_", name
        assert text[1].startswith("# "), f"{name}: a comment saying what it runs comes second"
        assert re.search(rf"\b{name}\b", readme), f"{name} is not in the README"


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_into_a_valid_run(tmp_path, tiny_model_dir, name):
    overrides = [f"experiment={name}"]
    if name == "ppo_demo":  # its reward model is rm_demo's output; any checkpoint directory stands in for it
        overrides.append(f"algorithm.reward_model={tiny_model_dir}")
    run = build_run(compose(overrides), tmp_path)
    option = RECIPES[name][0].split("=")[1] if RECIPES[name] else "dpo"
    assert run.algorithm.name == {"dapo": "grpo", "sapo": "grpo", "cispo": "grpo"}.get(option, option)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_each_experiment_is_the_readme_recipe(name):
    assert plain(compose([f"experiment={name}"])) == plain(compose(RECIPES[name]))


def test_grpo_demo_key_settings():
    cfg = compose(["experiment=grpo_demo"])
    assert (cfg.algorithm.name, cfg.algorithm.num_generations, cfg.algorithm.max_completion_length) == ("grpo", 4, 40)
    assert cfg.dataset.path.endswith("/arith_math")
    assert (cfg.train.max_steps, cfg.train.learning_rate, cfg.train.per_device_train_batch_size) == (24, 5e-4, 8)


def test_dapo_demo_key_settings():
    cfg = compose(["experiment=dapo_demo"])
    assert (cfg.algorithm.loss_type, cfg.algorithm.soft_cache_length, cfg.train.max_steps) == ("dapo", 10, 24)


def test_rm_demo_writes_where_ppo_demo_reads():
    rm = compose(["experiment=rm_demo"], with_hydra=True)
    assert rm.hydra.run.dir == "outputs/rm_demo"
    assert (rm.algorithm.name, rm.train.num_train_epochs, rm.train.learning_rate) == ("rm", 1, 1e-3)
    assert compose(["experiment=ppo_demo"]).algorithm.reward_model == f"{rm.hydra.run.dir}/model"


def test_the_default_config_is_dpo_demo():
    assert plain(compose()) == plain(compose(["experiment=dpo_demo"]))
    assert compose(with_hydra=True).hydra.runtime.choices.experiment == "dpo_demo"


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["algorithm=kto", "model=qwen3_8b"],
        ["model=tiny", "train.max_steps=2"],
        ["algorithm=grpo", "dataset=arith_math"],
        ["algorithm=gkd", "tuner=full", "dataset=arith_chat"],
        ["model=tiny_vl", "distributed=zero2"],
        ["hparams_search=dpo_beta"],
    ],
)
def test_the_default_experiment_changes_nothing_the_command_line_chooses(tmp_path, overrides):
    """dpo_demo comes last in the defaults list; it must set nothing that an option chosen on the command line
    (a model preset's learning rate, another algorithm's values) would otherwise give."""
    without = tmp_path / "conf"
    shutil.copytree(CONF_DIR, without)
    config = without / "config.yaml"
    config.write_text(config.read_text().replace("  - experiment: dpo_demo\n", ""))
    assert "- experiment:" not in config.read_text()
    assert plain(compose(overrides)) == plain(compose(overrides, conf_dir=without))


def test_the_command_line_beats_the_experiment():
    assert compose(["experiment=grpo_demo", "train.max_steps=3"]).train.max_steps == 3
    assert compose(["algorithm=kto"]).algorithm.name == "kto"
    cfg = compose(["experiment=grpo_demo", "algorithm=sapo", "model=tiny"])
    assert (cfg.algorithm.loss_type, cfg.algorithm.num_generations) == ("sapo", 4)
    assert cfg.model.name_or_path == "builtin:tiny-llama"
    # The experiment's value wins over the model preset's (tiny: 5e-4).
    assert compose(["experiment=ppo_demo", "model=tiny"]).train.learning_rate == 2e-4
    assert (
        compose(["experiment=rm_demo", "hydra.run.dir=outputs/mine"], with_hydra=True).hydra.run.dir == "outputs/mine"
    )
