"""Algorithm name -> how to build it. The only place that branches on the algorithm.

Adding an algorithm: a schema dataclass (schema/algorithm.py), a YAML file (conf/algorithm/), a builder
module (algorithms/<name>.py) and one entry here. Builders are imported only when a run trains, so
config-only commands stay free of torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class AlgorithmSpec:
    name: str
    # Row format it reads (data/formats.py).
    data_format: str
    # "module:attribute" of its builder: build(run, model, tokenizer, data, callbacks) -> Trainer.
    builder: str
    # Held-out evaluation before and after training (evaluation/<name>.py), or None.
    evaluation: str | None
    # Whether it can run under each distributed backend (the scale-out seam).
    distributed: tuple[str, ...] = ("single",)

    def load_builder(self):
        module, _, attr = self.builder.partition(":")
        return getattr(importlib.import_module(module), attr)

    def load_evaluation(self):
        if self.evaluation is None:
            return None
        module, _, attr = self.evaluation.partition(":")
        return getattr(importlib.import_module(module), attr)


ALGORITHMS: dict[str, AlgorithmSpec] = {
    "dpo": AlgorithmSpec(
        name="dpo",
        data_format="pairs",
        builder="rlhf_lab.algorithms.dpo:build",
        evaluation="rlhf_lab.evaluation.preference:PreferenceEval",
    ),
}


def get_spec(name: str) -> AlgorithmSpec:
    try:
        return ALGORITHMS[name]
    except KeyError:
        from rlhf_lab.errors import ConfigError

        raise ConfigError("algorithm.name", f"no builder for {name!r}; known: {', '.join(ALGORITHMS)}") from None
