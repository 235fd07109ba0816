"""Run the LM head only over the positions a loss scores, on every device.

TRL's fused LM head (DPO, GRPO) projects through the vocabulary only the positions that have a label on Triton
devices, and every position elsewhere: a fixed tile shape matters to compilers such as Neuron's. On CPUs that makes the
head's projection, its recomputation in the backward pass, its gradient and the vocabulary-wide log-softmax run over
prompt and padding positions whose results are then zeroed: about a third of a DPO step on SmolLM2, whose 49k-word
head is a fifth of its weights. Each position's value is computed the same way in both layouts.
"""

from __future__ import annotations


def score_only_labelled_positions() -> None:
    """Make TRL's fused head take its compact path on CPUs too (idempotent)."""
    import trl.trainer.utils as trl_utils

    original = trl_utils._use_triton
    if getattr(original, "rlhf_lab_compact", False):
        return

    def compact(device) -> bool:
        # Only the fused forward's layout choice reads this name; TRL's kernels keep their own reference to pick
        # Triton or torch tiles.
        return device.type == "cpu" or original(device)

    compact.rlhf_lab_compact = True
    compact.original = original
    trl_utils._use_triton = compact


def score_every_position() -> None:
    """TRL's own layout (for comparisons)."""
    import trl.trainer.utils as trl_utils

    trl_utils._use_triton = getattr(trl_utils._use_triton, "original", trl_utils._use_triton)
