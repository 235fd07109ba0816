"""DAPO's dynamic sampling on TRL's generated batches.

A group (the num_generations answers of one prompt) whose rewards are all equal has zero advantage for every
answer, so it adds nothing to the policy gradient. Dynamic sampling drops such groups and refills the batch
with groups generated for further prompts, so every optimizer step trains on full batches of informative groups.

These functions work on the dict TRL's GRPOTrainer builds per process (prompt_ids left-padded, completion-aligned
tensors right-padded); they keep the batch size unchanged.
"""

from __future__ import annotations

import torch

# Per-answer tensors aligned with the prompt (left-padded) or with the completion (right-padded).
PROMPT_KEYS = ("prompt_ids", "prompt_mask")
COMPLETION_KEYS = (
    "completion_ids",
    "completion_mask",
    "old_per_token_logps",
    "ref_per_token_logps",
    "sampling_per_token_logps",
    "tool_mask",
)
ROW_KEYS = ("advantages",)
# Recomputed after selection.
DERIVED_KEYS = ("num_items_in_batch",)
SUPPORTED = set(PROMPT_KEYS + COMPLETION_KEYS + ROW_KEYS + DERIVED_KEYS + ("importance_sampling_ratio",))


def informative_groups(rewards: torch.Tensor, num_generations: int) -> torch.Tensor:
    """Bool per group: True when its answers' (weighted total) rewards are not all equal. NaN rewards (answers no
    reward could score) are ignored; a group with fewer than two scored answers carries no signal."""
    r = rewards.view(-1, num_generations)
    scored = ~torch.isnan(r)
    high = torch.where(scored, r, torch.full_like(r, -torch.inf)).max(dim=1).values
    low = torch.where(scored, r, torch.full_like(r, torch.inf)).min(dim=1).values
    return (scored.sum(dim=1) >= 2) & ~torch.isclose(high, low)


def unsupported_keys(batch: dict) -> list[str]:
    return sorted(k for k, v in batch.items() if k not in SUPPORTED and v is not None)


def _pad_to(t: torch.Tensor, width: int, value, left: bool) -> torch.Tensor:
    missing = width - t.size(1)
    if missing <= 0:
        return t
    pad = t.new_full((t.size(0), missing, *t.shape[2:]), value)
    return torch.cat([pad, t] if left else [t, pad], dim=1)


def _per_token(key: str, value: torch.Tensor) -> bool:
    # vLLM's importance ratio is (B, T) in its token modes and (B, 1) in its sequence modes.
    return key == "importance_sampling_ratio" and value.dim() == 2 and value.size(1) > 1


def concat(batches: list[dict], pad_token_id: int) -> dict:
    """One batch from several, padding prompts on the left and completions on the right."""
    out: dict = {}
    for key in batches[0]:
        values = [b[key] for b in batches]
        if key in DERIVED_KEYS or values[0] is None:
            out[key] = values[0]
        elif key in PROMPT_KEYS or key in COMPLETION_KEYS or _per_token(key, values[0]):
            left = key in PROMPT_KEYS
            width = max(v.size(1) for v in values)
            fill = pad_token_id if key in ("prompt_ids", "completion_ids") else 0
            out[key] = torch.cat([_pad_to(v, width, fill, left) for v in values], dim=0)
        else:
            out[key] = torch.cat(values, dim=0)
    return out


def select_rows(batch: dict, rows: torch.Tensor) -> dict:
    return {k: (v if k in DERIVED_KEYS or v is None else v[rows]) for k, v in batch.items()}


def fill_batch(
    batches: list[dict], informative: list[torch.Tensor], num_generations: int, size: int, pad_token_id: int
) -> tuple[dict, dict[str, int]]:
    """Keep the informative groups of `batches` (one bool per group in `informative`) in order; when fewer than
    size/num_generations, top up with the earliest uninformative groups (the batch size must not change).
    Returns the batch and counts for logging."""
    merged = concat(batches, pad_token_id)
    first_round_groups = informative[0].numel()
    informative = torch.cat(informative).cpu()
    n_groups = size // num_generations
    good = torch.nonzero(informative).flatten()
    bad = torch.nonzero(~informative).flatten()
    chosen = torch.cat([good[:n_groups], bad[: max(0, n_groups - len(good))]])
    chosen, _ = torch.sort(chosen)
    rows = (chosen.unsqueeze(1) * num_generations + torch.arange(num_generations)).flatten()
    stats = {
        "dropped_groups": int((~informative[:first_round_groups]).sum()),
        "refilled_groups": max(0, min(len(good), n_groups) - int((good < first_round_groups).sum())),
        "uninformative_kept": int(max(0, n_groups - len(good))),
        "rounds": len(batches),
    }
    return select_rows(merged, rows.to(merged["advantages"].device)), stats
