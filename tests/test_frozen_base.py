"""LoRA under bf16 autocast stores the frozen base Linear weights in bf16: the same numbers, half the bytes."""

import math

import pytest
import torch
from conftest import TINY, build_trainer

from rlhf_lab.models.frozen_base import frozen_base_blocker, store_frozen_base_in_bf16


def dtypes(model) -> dict[str, set]:
    kinds = {"base": set(), "adapter": set(), "other": set()}
    for name, p in model.named_parameters():
        kind = "base" if "base_layer" in name else "adapter" if "lora_" in name else "other"
        kinds[kind].add(p.dtype)
    return kinds


@pytest.mark.parametrize("bf16", [True, False])
def test_a_lora_run_under_bf16_keeps_only_its_frozen_linear_weights_in_bf16(compose, tmp_path, tiny_model_dir, bf16):
    trainer = build_trainer(compose, tmp_path, [*TINY, "algorithm=dpo"], bf16=bf16)
    kinds = dtypes(trainer.model)
    assert kinds["base"] == ({torch.bfloat16} if bf16 else {torch.float32})
    # Adapters train in fp32; embeddings and norms feed the fp32 residual stream.
    assert kinds["adapter"] == {torch.float32} and kinds["other"] == {torch.float32}


def test_a_reward_model_run_that_saves_a_merged_model_keeps_its_base_as_loaded(compose, tmp_path, tiny_model_dir):
    trainer = build_trainer(compose, tmp_path, [*TINY, "algorithm=rm"], bf16=True)
    assert dtypes(trainer.model)["base"] == {torch.float32}


def test_where_the_base_keeps_its_dtype():
    assert frozen_base_blocker(True, True, "single", False) is None
    assert frozen_base_blocker(True, True, "ddp", False) is None
    assert "LoRA" in frozen_base_blocker(False, True, "single", False)
    assert "LoRA" in frozen_base_blocker(True, False, "single", False)
    assert "DeepSpeed" in frozen_base_blocker(True, True, "deepspeed", False)
    assert "merged" in frozen_base_blocker(True, True, "single", True)


class Tied(torch.nn.Module):
    """An embedding whose weight is also a Linear output head's, and one ordinary Linear."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(11, 8)
        self.proj = torch.nn.Linear(8, 8)
        self.head = torch.nn.Linear(8, 11, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, ids):
        return self.head(self.proj(self.embed(ids)))


def test_a_weight_tied_to_another_module_stays_fp32():
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(Tied(), LoraConfig(r=2, target_modules=["proj", "head"]))
    cast = store_frozen_base_in_bf16(model)
    inner = model.base_model.model
    assert inner.proj.base_layer.weight.dtype == torch.bfloat16 and inner.proj.base_layer.bias.dtype == torch.bfloat16
    assert inner.head.base_layer.weight.dtype == torch.float32  # it is the embedding too
    assert cast == 8 * 8 + 8


def lora_model(path, seed):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32),
        LoraConfig(r=4, target_modules="all-linear", lora_dropout=0.0),
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:  # B starts at zero: move it so that the adapters take part
                p.add_(torch.randn(p.shape) * 0.5)
    return model


def test_bf16_base_weights_compute_exactly_what_autocast_computes_from_fp32_ones(tiny_model_dir):
    # Two separately built, identical models (a deep copy could share a forward bound to the original).
    fp32, stored = lora_model(tiny_model_dir, 0), lora_model(tiny_model_dir, 0)
    assert store_frozen_base_in_bf16(stored) > 0
    assert fp32.base_model.model.model.layers[0].mlp.up_proj.base_layer.weight.dtype == torch.float32
    ids = torch.randint(3, 100, (3, 17), generator=torch.Generator().manual_seed(1))
    results = []
    for model in (fp32, stored):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(input_ids=ids).logits
        logits.float().logsumexp(-1).sum().backward()
        results.append((logits, {n: p.grad for n, p in model.named_parameters() if p.requires_grad}))
    (logits_a, grads_a), (logits_b, grads_b) = results
    assert logits_a.dtype == torch.bfloat16
    # Bitwise: autocast rounds an fp32 weight to bf16 exactly as the stored copy was rounded.
    assert torch.equal(logits_a, logits_b)
    assert grads_a.keys() == grads_b.keys() and grads_a
    for name in grads_a:
        assert grads_a[name] is not None and grads_b[name] is not None, name
        assert torch.equal(grads_a[name], grads_b[name]), name
    # Without autocast the model would mix dtypes: the bf16 storage is only for runs under autocast.
    with pytest.raises(RuntimeError):
        stored(input_ids=ids)


MAPPED = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from conftest import TINY, build_trainer
from hydra import compose as hydra_compose, initialize_config_dir
from rlhf_lab.config import register_schemas

register_schemas()
with initialize_config_dir({conf!r}, version_base="1.3"):
    cfg = lambda o: hydra_compose("config", overrides=o)
    trainer = build_trainer(cfg, Path({tmp!r}), [*TINY, "algorithm=dpo", "logger=none"], bf16={bf16})
maps = [line.split()[-1] for line in open("/proc/self/smaps") if line.rstrip().endswith(".safetensors")]
print("MAPPED" if any(m.startswith({model!r}) for m in maps) else "RELEASED")
"""


@pytest.mark.parametrize("bf16, expected", [(True, "RELEASED"), (False, "MAPPED")])
def test_storing_the_base_in_bf16_releases_the_memory_mapped_checkpoint(tmp_path, tiny_model_dir, bf16, expected):
    # While any tensor points into the mapped checkpoint, the whole map stays resident, fp32 pages of the cast
    # weights included (on SmolLM2 after one DPO pass: 2658 MB RSS kept, 2238 MB released).
    import subprocess
    import sys
    from pathlib import Path

    from conftest import CONF_DIR, ROOT

    code = MAPPED.format(
        tests=str(ROOT / "tests"),
        conf=CONF_DIR,
        tmp=str(tmp_path),
        bf16=bf16,
        model=str(Path(tiny_model_dir).resolve()),
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == expected


@pytest.mark.parametrize(
    "overrides",
    [
        # TRL generates outside the training step's autocast here: GRPO without its copy, GKD's on-policy answers.
        [
            "algorithm=grpo",
            "dataset=arith_math",
            "algorithm.generation_copy=off",
            "train.per_device_train_batch_size=4",
            "algorithm.num_generations=2",
            "algorithm.max_completion_length=8",
        ],
        [
            "algorithm=gkd",
            "algorithm.teacher_model=tiny",
            "dataset=arith_chat",
            "algorithm.max_completion_length=8",
            "algorithm.lmbda=1",
        ],
    ],
    ids=["grpo-without-copy", "gkd-on-policy"],
)
def test_generating_with_the_bf16_base_runs_under_autocast(compose, tmp_path, tiny_model_dir, overrides):
    trainer = build_trainer(compose, tmp_path, [*TINY, *overrides, "train.max_steps=1"], bf16=True)
    assert dtypes(trainer.model)["base"] == {torch.bfloat16}
    trainer.train()
    assert trainer.state.global_step == 1 and math.isfinite(trainer.state.log_history[0]["loss"])
