"""export: a run's model as one plain transformers checkpoint; its outputs equal the adapter model's."""

import json

import pytest
import torch
from conftest import TINY, run_cli
from safetensors.torch import load_file

# Big enough steps that the adapters move well away from zero (a merge of a no-op adapter would prove nothing).
TRAINED = [*TINY, "train.eval=false", "train.learning_rate=5e-2"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir, train):
    root = tmp_path_factory.mktemp("export")
    cases = {
        "dpo": [],
        "full": ["tuner=full", "train.learning_rate=1e-3"],
        "rm": ["algorithm=rm"],
        "ppo": [
            "algorithm=ppo",
            "dataset=arith_math",
            "algorithm.reward_funcs=[accuracy]",
            "algorithm.max_completion_length=8",
        ],
        "vl": ["model=tiny_vl", "dataset=shapes"],
        "kto": ["algorithm=kto"],
        "grpo": [
            "algorithm=grpo",
            "dataset=arith_math",
            "algorithm.num_generations=2",
            "algorithm.reward_funcs=[accuracy]",
            "algorithm.max_completion_length=8",
        ],
        "gkd": ["algorithm=gkd", "dataset=arith_chat", "algorithm.teacher_model=tiny", "algorithm.lmbda=0"],
    }
    done = {}
    for name, extra in cases.items():
        summary = train([*TRAINED, *extra], root / name)
        assert summary["status"] == "completed", summary
        done[name] = root / name
    return done


def _ids(vocab: int, rows: int = 2, length: int = 12) -> torch.Tensor:
    return torch.randint(3, vocab, (rows, length), generator=torch.Generator().manual_seed(0))


def _peft(base_cls, base_path, adapter, **kwargs):
    from peft import PeftModel

    base = base_cls.from_pretrained(base_path, dtype=torch.float32, **kwargs)
    return PeftModel.from_pretrained(base, str(adapter)).eval()


def _base_path(adapter) -> str:
    return json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]


def test_a_lora_run_exports_a_merged_model_with_the_adapter_models_logits(runs):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = runs["dpo"]
    proc = run_cli(["export", f"run={run}"], cwd=run)
    assert proc.returncode == 0, proc.stderr
    out = run / "export"
    assert str(out) in proc.stdout
    assert (out / "model.safetensors").exists() and (out / "generation_config.json").exists()
    assert not (out / "adapter_config.json").exists()  # a plain model, not an adapter
    exported = AutoModelForCausalLM.from_pretrained(out).eval()
    adapted = _peft(AutoModelForCausalLM, _base_path(run / "adapter"), run / "adapter")
    base = AutoModelForCausalLM.from_pretrained(_base_path(run / "adapter"), dtype=torch.float32).eval()
    ids = _ids(exported.config.vocab_size)
    with torch.no_grad():
        got, want, before = exported(ids).logits, adapted(ids).logits, base(ids).logits
    assert (got - want).abs().max().item() < 1e-4  # float rounding of the merge
    assert (want - before).abs().max().item() > 1e-3  # and the adapter did change the model
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert (
        tokenizer.chat_template
        and tokenizer.chat_template == AutoTokenizer.from_pretrained(run / "adapter").chat_template
    )


@pytest.mark.parametrize("name", ["kto", "grpo", "gkd"])
def test_every_family_with_a_causal_lm_exports_its_merged_policy(runs, tmp_path, name):
    from transformers import AutoModelForCausalLM

    run = runs[name]
    out = tmp_path / name
    assert run_cli(["export", f"run={run}", f"out={out}"], cwd=tmp_path).returncode == 0
    exported = AutoModelForCausalLM.from_pretrained(out).eval()
    adapted = _peft(AutoModelForCausalLM, _base_path(run / "adapter"), run / "adapter")
    ids = _ids(exported.config.vocab_size)
    with torch.no_grad():
        assert (exported(ids).logits - adapted(ids).logits).abs().max().item() < 1e-4


def test_an_existing_export_is_kept_unless_overwrite_is_set(runs, tmp_path):
    run = runs["dpo"]
    out = tmp_path / "merged"
    assert run_cli(["export", f"run={run}", f"out={out}"], cwd=tmp_path).returncode == 0
    again = run_cli(["export", f"run={run}", f"out={out}"], cwd=tmp_path)
    assert again.returncode == 2 and again.stderr.count("\n") == 1
    assert f"out: {out} already exists" in again.stderr and "overwrite=true" in again.stderr
    assert (
        run_cli(["export", f"run={run}", f"out={out}", "overwrite=true", "dtype=bfloat16"], cwd=tmp_path).returncode
        == 0
    )
    weights = load_file(out / "model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.bfloat16}
    assert not list(tmp_path.glob(".merged.partial"))


def test_a_full_tuning_run_is_copied_as_it_was_saved(runs, tmp_path):
    run = runs["full"]
    out = tmp_path / "full"
    assert run_cli(["export", f"run={run}", f"out={out}"], cwd=tmp_path).returncode == 0
    saved = sorted(p.relative_to(run / "model") for p in (run / "model").rglob("*") if p.is_file())
    assert saved == sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert all((out / p).read_bytes() == (run / "model" / p).read_bytes() for p in saved)


def test_a_reward_model_exports_as_a_sequence_classifier_with_the_runs_scores(runs, tmp_path):
    from transformers import AutoModelForSequenceClassification

    run = runs["rm"]
    out = tmp_path / "rm"
    assert run_cli(["export", f"run={run}", f"out={out}"], cwd=tmp_path).returncode == 0
    exported = AutoModelForSequenceClassification.from_pretrained(out).eval()
    saved = AutoModelForSequenceClassification.from_pretrained(run / "model").eval()
    assert exported.config.num_labels == 1 and exported.config.pad_token_id is not None
    ids = _ids(exported.config.vocab_size)
    with torch.no_grad():
        assert torch.equal(exported(ids).logits, saved(ids).logits)


def test_ppo_exports_the_policy_and_its_value_model_beside_it(runs, tmp_path):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    run = runs["ppo"]
    out = tmp_path / "ppo"
    assert run_cli(["export", f"run={run}", f"out={out}"], cwd=tmp_path).returncode == 0
    policy = AutoModelForCausalLM.from_pretrained(out).eval()
    adapted = _peft(AutoModelForCausalLM, _base_path(run / "adapter"), run / "adapter")
    ids = _ids(policy.config.vocab_size)
    with torch.no_grad():
        assert (policy(ids).logits - adapted(ids).logits).abs().max().item() < 1e-4
    critic = AutoModelForSequenceClassification.from_pretrained(out / "value_model").eval()
    assert critic.config.pad_token_id is not None
    # The value head is the one PPO trained (saved with the adapter), not a newly initialised one.
    trained = load_file(run / "adapter" / "value_model" / "adapter_model.safetensors")
    head = next(v for k, v in trained.items() if "score" in k)
    assert torch.equal(critic.score.weight, head)


def test_a_vision_language_run_exports_its_image_text_class_and_processor(runs, tmp_path):
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    run = runs["vl"]
    out = tmp_path / "vl"
    assert run_cli(["export", f"run={run}", f"out={out}"], cwd=tmp_path).returncode == 0
    exported = AutoModelForImageTextToText.from_pretrained(out).eval()
    adapted = _peft(AutoModelForImageTextToText, _base_path(run / "adapter"), run / "adapter")
    processor = AutoProcessor.from_pretrained(out)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What shape?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[text], images=[Image.new("RGB", (56, 56), "red")], return_tensors="pt")
    with torch.no_grad():
        got, want = exported(**inputs).logits, adapted(**inputs).logits
    assert (got - want).abs().max().item() < 1e-4


@pytest.mark.parametrize(
    "make,expected",
    [
        (lambda d: d / "missing", "is not a directory"),
        (lambda d: d, "holds no saved model (adapter/ or model/)"),
    ],
    ids=["no-directory", "no-saved-model"],
)
def test_bad_runs_are_one_line_exit_2(tmp_path, make, expected):
    proc = run_cli(["export", f"run={make(tmp_path)}"], cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and expected in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_typo_in_a_key_is_one_line_with_the_close_key(tmp_path):
    proc = run_cli(["export", "rn=x"], cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "config error: rn: not a key of export (did you mean run?); its keys: run, out, dtype, overwrite"
    )
