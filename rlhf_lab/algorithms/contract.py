"""What rlhf_lab asks of every trainer an algorithm builds, beyond transformers' Trainer, declared in one place.

Every builder returns an instance of LabTrainer (its own subclass, or a library trainer through `lab`), so the
training flow calls these methods directly instead of probing for them. The defaults are for trainers that have
nothing to add.
"""

from __future__ import annotations

import functools


class LabTrainer:
    """Mixed in ahead of the library's trainer class."""

    def summary_extras(self) -> dict:
        """Algorithm-specific figures for summary.json (e.g. GRPO's zero-variance fractions)."""
        return {}

    def lab_checkpoint_state(self) -> dict | None:
        """rlhf_lab's own counters to store with a checkpoint (the library's state is stored by the library)."""
        return None

    def lab_restore_state(self, state: dict) -> None:
        """Take back what lab_checkpoint_state stored (a checkpoint of the same run: the fingerprint matched)."""


@functools.cache
def lab(trainer_class: type) -> type:
    """A library trainer class with the contract's defaults (TRL's own trainers, used as they are)."""
    if issubclass(trainer_class, LabTrainer):
        return trainer_class
    return type(trainer_class.__name__, (LabTrainer, trainer_class), {"__module__": trainer_class.__module__})


def check_contract(trainer, builder: str) -> None:
    if not isinstance(trainer, LabTrainer):
        raise TypeError(
            f"{builder} returned a {type(trainer).__name__}, which is not a LabTrainer "
            "(rlhf_lab/algorithms/contract.py): wrap the class with contract.lab"
        )
