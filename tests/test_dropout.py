"""Dropout is on exactly where the config says: tuner.dropout and algorithm.disable_dropout reach the built model."""

import pytest
import torch
from conftest import TINY, build_trainer

# Each algorithm's smallest buildable settings on the tiny model.
ALGORITHMS = {
    "dpo": [],
    "kto": ["dataset=arith_kto"],
    "cpo": [],
    "simpo": [],
    "orpo": [],
    "rm": [],
    "gkd": ["algorithm.teacher_model=tiny", "dataset=arith_chat", "algorithm.max_completion_length=8"],
    "grpo": [
        "dataset=arith_math",
        "train.per_device_train_batch_size=4",
        "algorithm.num_generations=2",
        "algorithm.max_completion_length=8",
    ],
}


def adapter_dropout_rates(model) -> list[float]:
    """The rate of every LoRA dropout module (peft builds an Identity, not a Dropout, for a rate of 0)."""
    return [m.p for name, m in model.named_modules() if ".lora_dropout." in name and isinstance(m, torch.nn.Dropout)]


def other_dropout_rates(model) -> list[float]:
    return [
        m.p for name, m in model.named_modules() if ".lora_dropout." not in name and isinstance(m, torch.nn.Dropout)
    ]


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_an_asked_for_dropout_reaches_the_model(compose, tmp_path, tiny_model_dir, algorithm):
    trainer = build_trainer(
        compose,
        tmp_path,
        [
            *TINY,
            f"algorithm={algorithm}",
            *ALGORITHMS[algorithm],
            "algorithm.disable_dropout=false",
            "tuner.dropout=0.2",
        ],
    )
    rates = adapter_dropout_rates(trainer.model)
    assert rates and set(rates) == {0.2}  # not zeroed by the trainer (TRL's disable_dropout)


@pytest.mark.parametrize("algorithm,expected", [("dpo", set()), ("kto", set()), ("rm", set()), ("grpo", {0.05})])
def test_default_dropout_follows_the_algorithm(compose, tmp_path, tiny_model_dir, algorithm, expected):
    trainer = build_trainer(compose, tmp_path, [*TINY, f"algorithm={algorithm}", *ALGORITHMS[algorithm]])
    assert set(adapter_dropout_rates(trainer.model)) == expected
    assert set(other_dropout_rates(trainer.model)) <= {0.0}  # the tiny model's own dropout rates are 0 anyway


def test_dpo_with_dropout_trains_on_perturbed_passes(compose, tmp_path, tiny_model_dir):
    """With dropout on, two training-mode passes over the same batch differ; in eval mode they agree."""
    trainer = build_trainer(compose, tmp_path, [*TINY, "algorithm.disable_dropout=false", "tuner.dropout=0.3"])
    model = trainer.model
    with torch.no_grad():  # a fresh adapter's B is zero, which would hide its input's dropout
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.1)
    ids = torch.arange(1, 17).view(2, 8)
    model.train()
    with torch.no_grad():
        first, second = model(input_ids=ids).logits, model(input_ids=ids).logits
    assert not torch.allclose(first, second)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, model(input_ids=ids).logits)
