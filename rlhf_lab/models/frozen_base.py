"""LoRA under bf16 autocast: keep the frozen base Linear weights in bf16.

Autocast casts an fp32 weight to bf16 at every forward, and it caches only casts of weights that require grad, so a
frozen base is re-cast at every policy, reference and generation pass (a sixth of a DPO step's CPU time on
SmolLM2). Storing those weights in bf16 gives the very numbers autocast computes from the fp32 ones (autocast rounds
them the same way) and halves their memory. Embeddings, norms and the adapters stay fp32, and so does any weight
shared with another module (a tied output head feeds the fp32 residual stream through the embedding).

transformers memory-maps the checkpoint: the map stays resident as long as one tensor points into it, fp32 pages of
the cast weights included. The other frozen parameters are therefore copied out of it, which releases the map.
"""

from __future__ import annotations

import functools
from collections import Counter

from rlhf_lab.config.distributed import WHOLE_MODEL_BACKENDS


def frozen_base_blocker(bf16: bool, lora: bool, backend: str, merges_adapter: bool) -> str | None:
    """Why the base must keep its loaded dtype in this run, or None where bf16 storage is exact."""
    if not (bf16 and lora):
        return "only LoRA runs under bf16 autocast compute with bf16 base weights"
    if backend not in WHOLE_MODEL_BACKENDS:
        return "DeepSpeed and FSDP keep the weights in the dtype they manage themselves"
    if merges_adapter:
        # The merged model is saved: its base weights must be the loaded ones, not their bf16 rounding.
        return "the run saves the adapter merged into the full-precision base"
    return None


def store_frozen_base_in_bf16(model) -> int:
    """Cast the fp32 weights and biases of the frozen Linear layers under LoRA adapters to bf16, in place.
    Returns the number of parameters cast."""
    import torch
    from peft.tuners.lora import LoraLayer

    # A parameter that appears under two names is tied to another module (e.g. the embedding).
    uses = Counter(id(p) for _, p in model.named_parameters(remove_duplicate=False))
    cast = 0
    for module in model.modules():
        if not isinstance(module, LoraLayer):
            continue
        base = module.get_base_layer()
        if not isinstance(base, torch.nn.Linear):
            continue
        for param in (base.weight, base.bias):
            if param is None or param.requires_grad or param.dtype != torch.float32 or uses[id(param)] > 1:
                continue
            param.data = param.data.to(torch.bfloat16)
            cast += param.numel()
    if cast:
        for param in model.parameters():
            if not param.requires_grad and param.dtype == torch.float32:
                param.data = param.data.clone()
    return cast


def generate_under_autocast(model, autocast) -> None:
    """Make model.generate run under `autocast` (a context manager factory): TRL's trainers generate outside the
    training step's autocast (GRPO without its generation copy, GKD's on-policy answers), where bf16 base weights
    would meet fp32 activations."""
    generate = model.generate

    @functools.wraps(generate)
    def under_autocast(*args, **kwargs):
        with autocast():
            return generate(*args, **kwargs)

    model.generate = under_autocast
