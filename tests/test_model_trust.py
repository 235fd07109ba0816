"""Each model its own trust: the reference, reward, value and teacher models load with their own revision and
trust_remote_code (never the policy's), a missing local path is a one-line config error and never a download, and a
revision that would do nothing is refused."""

from types import SimpleNamespace

import pytest
from conftest import GRPO_TINY, TINY, run_cli

from rlhf_lab.cli.swift.translate import translate, words_of

PPO_TINY = [*TINY, "algorithm=ppo", "dataset=arith_math", "algorithm.max_completion_length=8"]
GKD_TINY = [*TINY, "algorithm=gkd", "dataset=arith_chat", "algorithm.max_completion_length=8"]
LOADERS = ("AutoConfig", "AutoTokenizer", "AutoModelForCausalLM", "AutoModelForSequenceClassification")


@pytest.fixture
def hub_loads(monkeypatch, tmp_path, tiny_model_dir):
    """transformers' from_pretrained, recording what each call for a hub id org/... asked for (revision,
    trust_remote_code) and loading the tiny model in its place (there is no Hub here)."""
    import transformers

    from rlhf_lab.vision.models import is_vision_language

    is_vision_language.cache_clear()
    monkeypatch.chdir(tmp_path)  # no folder named org here: org/... are hub ids
    calls = []
    for name in LOADERS:
        cls = getattr(transformers, name)
        original = cls.from_pretrained

        def fake(path, *args, _original=original, _name=name, **kwargs):
            if str(path).startswith("org/"):
                calls.append((_name, str(path), kwargs.get("revision"), kwargs.get("trust_remote_code")))
                path, kwargs = tiny_model_dir, {k: v for k, v in kwargs.items() if k != "revision"}
            return _original(path, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", fake)
    yield calls
    is_vision_language.cache_clear()


def _reference(run, inputs):
    from rlhf_lab.algorithms.common import reference_model

    return reference_model(run, inputs, run.algorithm.ref_model)


def _reward(run, inputs):
    from rlhf_lab.algorithms.common import load_reward_model

    return load_reward_model(run, inputs.bf16)


def _critic(run, inputs):
    from rlhf_lab.algorithms.ppo.build import load_critic

    return load_critic(run, inputs)


def _teacher(run, inputs):
    from rlhf_lab.algorithms.gkd.build import load_teacher

    return load_teacher(run, inputs)


# (the run's overrides, the field naming the extra model, what loads it)
EXTRA_MODELS = {
    "dpo_ref_model": ([*TINY, "algorithm.ref_model=org/ref"], "ref_model", _reference),
    "kto_ref_model": ([*TINY, "algorithm=kto", "algorithm.ref_model=org/ref"], "ref_model", _reference),
    "grpo_reward_model": ([*GRPO_TINY, "algorithm.reward_model=org/rm"], "reward_model", _reward),
    "ppo_reward_model": ([*PPO_TINY, "algorithm.reward_model=org/rm"], "reward_model", _reward),
    "ppo_value_model": (
        [*PPO_TINY, "algorithm.reward_funcs=[accuracy]", "algorithm.value_model=org/vm"],
        "value_model",
        _critic,
    ),
    "ppo_ref_model": (
        [*PPO_TINY, "algorithm.reward_funcs=[accuracy]", "algorithm.ref_model=org/ref"],
        "ref_model",
        _reference,
    ),
    "gkd_teacher_model": ([*GKD_TINY, "algorithm.teacher_model=org/teacher"], "teacher_model", _teacher),
}


def _inputs(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    return SimpleNamespace(bf16=False, peft_config=object(), tokenizer=tokenizer, model=model, vision=False)


@pytest.mark.parametrize("case", EXTRA_MODELS, ids=str)
def test_each_extra_model_loads_with_its_own_revision_and_trust(case, compose, tmp_path, hub_loads, tiny_model_dir):
    from rlhf_lab.config.run import build_run

    overrides, field, load = EXTRA_MODELS[case]
    pins = [f"algorithm.{field}_revision=pinned-{field}", f"algorithm.{field}_trust_remote_code=true"]
    run = build_run(compose([*overrides, *pins]), tmp_path / "run")
    load(run, _inputs(tiny_model_dir))
    loaded = {name for name, *_ in hub_loads}
    assert "AutoConfig" in loaded and loaded & {"AutoModelForCausalLM", "AutoModelForSequenceClassification"}, loaded
    assert {(revision, trust) for _, _, revision, trust in hub_loads} == {(f"pinned-{field}", True)}, hub_loads


@pytest.mark.parametrize("case", EXTRA_MODELS, ids=str)
def test_trusting_the_policy_trusts_no_other_model(case, compose, tmp_path, hub_loads, tiny_model_dir):
    from rlhf_lab.config.run import build_run

    overrides, _, load = EXTRA_MODELS[case]
    run = build_run(compose([*overrides, "model.trust_remote_code=true"]), tmp_path / "run")
    load(run, _inputs(tiny_model_dir))
    assert hub_loads and {(revision, trust) for _, _, revision, trust in hub_loads} == {(None, False)}, hub_loads


def test_the_hub_check_asks_for_each_models_own_revision(compose, tmp_path, monkeypatch):
    from rlhf_lab.config.run import build_run
    from rlhf_lab.runtime import reachability

    monkeypatch.chdir(tmp_path)
    asked = []
    monkeypatch.setattr(reachability, "check_hub_model", lambda repo, key, revision=None: asked.append((key, revision)))
    overrides = [
        *PPO_TINY,
        "algorithm.reward_model=org/rm",
        "algorithm.reward_model_revision=r1",
        "algorithm.value_model=org/vm",
        "algorithm.ref_model=org/ref",
        "algorithm.ref_model_revision=r3",
    ]
    reachability.check_models(build_run(compose(overrides), tmp_path / "run"))
    assert sorted(asked) == [
        ("algorithm.ref_model", "r3"),
        ("algorithm.reward_model", "r1"),
        ("algorithm.value_model", None),
    ]


@pytest.fixture
def no_network(monkeypatch):
    """Every way to the Hub, recorded and refused: a test fails if any is taken."""
    import socket

    import huggingface_hub
    import huggingface_hub.file_download

    taken = []

    def refuse(what):
        def refused(*args, **kwargs):
            taken.append((what, args[:1]))
            raise OSError(f"{what}: no network in this test")

        return refused

    for name in ("hf_hub_download", "snapshot_download"):
        monkeypatch.setattr(huggingface_hub, name, refuse(name))
        monkeypatch.setattr(huggingface_hub.file_download, name, refuse(name), raising=False)
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    return taken


@pytest.mark.parametrize(
    "overrides, key",
    [
        ([*PPO_TINY, "algorithm.reward_model={path}"], "algorithm.reward_model"),
        ([*PPO_TINY, "algorithm.reward_funcs=[accuracy]", "algorithm.value_model={path}"], "algorithm.value_model"),
        ([*TINY, "algorithm.ref_model={path}"], "algorithm.ref_model"),
        ([*GKD_TINY, "algorithm.teacher_model={path}"], "algorithm.teacher_model"),
        ([*TINY, "model=custom", "model.name_or_path={path}"], "model.name_or_path"),
    ],
    ids=["ppo_reward", "ppo_value", "dpo_ref", "gkd_teacher", "policy"],
)
@pytest.mark.parametrize("path", ["rm_demo/model", "./x"])
def test_a_missing_local_path_is_one_line_naming_the_key_and_no_download(tmp_path, no_network, overrides, key, path):
    # rm_demo/ is here (say, an algorithm=rm run still training): rm_demo/model is a path, never a hub id.
    (tmp_path / "rm_demo").mkdir()
    args = [o.replace("{path}", path) for o in overrides]
    proc = run_cli([*args, f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith(f"config error: {key}: {path} does not exist"), lines[0]
    assert no_network == [] and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "overrides, line",
    [
        (
            [*TINY, "model.revision=v1"],
            "config error: model.revision: 'v1' would do nothing: builtin:tiny-llama is built here, not downloaded",
        ),
        (
            ["model.revision=v1"],  # the default model: SmolLM2's GGUF file in a Python package
            "config error: model.revision: 'v1' would do nothing: ",
        ),
        (
            [*GKD_TINY, "algorithm.teacher_model=tiny", "algorithm.teacher_model_revision=v1"],
            "config error: algorithm.teacher_model_revision: 'v1' would do nothing: builtin:tiny-llama is built here",
        ),
        (
            [*TINY, "algorithm.ref_model_revision=v1"],
            "config error: algorithm.ref_model_revision: would do nothing: algorithm.ref_model is not set",
        ),
        (
            [*GRPO_TINY, "algorithm.reward_model_trust_remote_code=true"],
            "config error: algorithm.reward_model_trust_remote_code: would do nothing: algorithm.reward_model is not",
        ),
    ],
    ids=["builtin", "gguf", "builtin_teacher", "ref_revision_alone", "reward_trust_alone"],
)
def test_a_setting_that_would_do_nothing_is_one_line(tmp_path, overrides, line):
    proc = run_cli([*overrides, "--cfg", "job"], cwd=tmp_path)
    lines = [text for text in proc.stderr.splitlines() if text.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith(line), lines[0]


def test_a_revision_on_a_local_checkpoint_is_one_line(tmp_path, tiny_model_dir):
    proc = run_cli(
        [*TINY, "model=custom", f"model.name_or_path={tiny_model_dir}", "model.revision=v1", "--cfg", "job"],
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().startswith(f"config error: model.revision: 'v1' would do nothing: {tiny_model_dir} is")


def test_ms_swift_revision_flags_translate():
    result = translate(
        words_of(
            [
                "swift rlhf --rlhf_type gkd --model Qwen/Qwen3-8B --model_revision v1 --teacher_model Qwen/Qwen3-8B "
                "--teacher_model_revision t1"
            ]
        )
    )
    assert {"model.revision=v1", "algorithm.teacher_model_revision=t1"} <= set(result.overrides), result.overrides
    result = translate(
        words_of(
            [
                "swift rlhf --rlhf_type ppo --model Qwen/Qwen3-8B --reward_model org/rm --reward_model_revision r1 "
                "--ref_model org/ref --ref_model_revision f1"
            ]
        )
    )
    assert {"algorithm.reward_model_revision=r1", "algorithm.ref_model_revision=f1"} <= set(result.overrides)
    assert result.refused == [], result.refused


def test_export_merges_a_critic_onto_its_base_as_the_run_loaded_it(tmp_path):
    from rlhf_lab.export.merge import SavedRun, _base_model

    settings = {
        "model.name_or_path": "builtin:tiny-llama",
        "model.trust_remote_code": True,
        "algorithm.value_model": "org/vm",
        "algorithm.value_model_revision": "v3",
        "algorithm.value_model_trust_remote_code": False,
    }
    run = SavedRun(tmp_path, tmp_path / "adapter", settings, "causal_lm")
    critic = _base_model(run, "value_model")
    assert (critic.name_or_path, critic.revision, critic.trust_remote_code) == ("org/vm", "v3", False)
    assert _base_model(run, None).trust_remote_code is True  # the policy's own base keeps the policy's settings
    # A run recorded before the extra models had settings of their own loaded them with none.
    recorded = {k: v for k, v in settings.items() if not k.startswith("algorithm.value_model_")}
    old = _base_model(SavedRun(tmp_path, tmp_path / "adapter", recorded, "causal_lm"), "value_model")
    assert (old.revision, old.trust_remote_code) == (None, False)
