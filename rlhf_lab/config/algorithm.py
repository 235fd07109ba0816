"""The base of every algorithm's options: what the run asks of each (its extra models, cross-group rules, data
checks). Each algorithm family's own options live beside its code (algorithms/<family>/config.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from omegaconf import MISSING

from rlhf_lab.config.fields import doc


def revision_field(model: str) -> Any:
    """The <field>_revision setting of an extra model."""
    return doc(None, f"Hub revision (branch, tag or commit) of {model}; null = its default branch, not model.revision.")


def trust_field(model: str) -> Any:
    """The <field>_trust_remote_code setting of an extra model."""
    return doc(
        False,
        f"Run code shipped with {model}; off unless you trust its authors (model.trust_remote_code: the policy only).",
    )


@dataclass
class AlgorithmConfig:
    name: str = doc(MISSING, "The algorithm: its key in rlhf_lab/algorithms/registry.py (set by the option).")
    # On by default (as TRL and ms-swift, for all but GRPO): the preference losses compare log-probs of the same
    # tokens under the policy and the reference.
    disable_dropout: bool = doc(True, "Switch off every dropout of the model, LoRA's included.")

    # The fields naming the algorithm's extra models (ref_model, reward_model, ...). Each has its own
    # <field>_revision and <field>_trust_remote_code: pinning the policy, or trusting its code, says nothing about them.
    extra_models: ClassVar[tuple[str, ...]] = ()

    def model_paths(self) -> dict[str, str]:
        """Extra models the algorithm loads (key -> path or hub id), checked before anything loads."""
        return {}

    def model_pins(self, key: str) -> tuple[str | None, bool]:
        """(revision, trust_remote_code) of the extra model in field `key`: its own settings, never the policy's."""
        return getattr(self, f"{key}_revision"), getattr(self, f"{key}_trust_remote_code")

    def plan_facts(self, tuner: str, backend: str = "single", cpu_bf16: bool = False):
        """What the algorithm holds and computes beside the policy, for the memory planner (planning/facts.py);
        backend: the distributed engine; cpu_bf16: the run trains in bf16 on a CPU (automatic settings depend on
        both)."""
        from rlhf_lab.planning.facts import PlanFacts

        return PlanFacts()

    def service_urls(self) -> dict[str, str]:
        """Services the algorithm calls over the network (key -> URL), checked before a model loads."""
        return {}

    def check_run(self, parts: dict) -> None:
        """Rules that involve other groups (e.g. the batch size); parts maps group name -> schema object.
        Raise ConfigError with the full dotted key."""

    def prepare_tokenizer(self, tokenizer, model_name: str) -> None:
        """Adapt the loaded tokenizer to the algorithm before the model loads (e.g. a chat template for tools)."""

    def check_data(self, rows: list[dict]) -> None:
        """Rules on the loaded rows that depend on the settings (e.g. a column a reward reads); raise DataError.
        Runs before any model loads."""

    @property
    def writes_completions(self) -> bool:
        """Whether the run writes its sampled answers at each logging step (algorithm.log_completions)."""
        return False

    def lazy_blocker(self) -> str | None:
        """Why the rows cannot be tokenized per batch (dataset.lazy_tokenize) with these settings; None if they can."""
        return None
