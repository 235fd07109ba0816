"""One forward for both answers of a preference pair: the prompt runs through the model once, not twice.

TRL's DPO batch holds every pair as two rows, [prompt + chosen; prompt + rejected], so the prompt tokens go through
the policy and the reference twice. Here each pair becomes one row,

    prompt | chosen | last prompt token again | rejected

with an attention mask that lets each answer see only the prompt and itself, and position ids that restart the
rejected answer where the prompt ends. The repeated prompt token gives the rejected answer its own position to
predict its first token from. Every answer token thus has the same context and positions as in TRL's layout, so its
log-prob is the same up to float rounding; the outputs are mapped back to TRL's layout, so TRL's losses and metrics
run unchanged. On short answers after a long prompt this removes up to half the tokens of every DPO forward.
"""

from __future__ import annotations

import types
from dataclasses import dataclass

import torch

PROMPT, CHOSEN, REJECTED, PAD = 0, 1, 2, -1
# Only these model inputs are packed; any other input that is set (images, token types) takes TRL's own path.
PACKABLE = {"input_ids", "attention_mask", "use_cache"}
MASKS = {"sdpa": "bool", "eager": "additive"}


@dataclass
class Packed:
    input_ids: torch.Tensor  # (pairs, packed_len)
    position_ids: torch.Tensor
    segments: torch.Tensor  # PROMPT / CHOSEN / REJECTED / PAD per position
    shift_labels: torch.Tensor  # the token each position predicts, -100 where nothing is scored
    source: torch.Tensor  # flat packed positions that are scored ...
    target: torch.Tensor  # ... and where each lands in TRL's (rows, seq_len - 1) layout
    rows: int
    seq_len: int

    def attention_mask(self, kind: str, dtype: torch.dtype) -> torch.Tensor:
        """(pairs, 1, len, len): causal, and a position sees the shared prompt and its own answer only."""
        seg = self.segments
        n = seg.size(1)
        causal = torch.ones(n, n, dtype=torch.bool, device=seg.device).tril()
        q, k = seg.unsqueeze(2), seg.unsqueeze(1)
        allowed = causal & (q != PAD) & (k != PAD) & ((k == PROMPT) | (k == q))
        # Padding queries see themselves, so that no softmax row is empty; nothing reads them.
        allowed |= torch.eye(n, dtype=torch.bool, device=seg.device) & (q == PAD)
        allowed = allowed.unsqueeze(1)
        if kind == "bool":
            return allowed
        return torch.zeros(allowed.shape, dtype=dtype, device=seg.device).masked_fill(~allowed, torch.finfo(dtype).min)

    def unpack(self, field: torch.Tensor | None) -> torch.Tensor | None:
        """A per-position output of the packed rows, laid out as TRL's (rows, seq_len - 1), zero where unscored."""
        if field is None:
            return None
        values = field.reshape(-1).index_select(0, self.source)
        out = values.new_zeros(self.rows * (self.seq_len - 1)).index_copy(0, self.target, values)
        return out.view(self.rows, self.seq_len - 1)


def pack_pairs(input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> Packed | None:
    """Pack TRL's [chosen rows; rejected rows] batch, or None when its rows are not pairs sharing a prompt."""
    rows, seq_len = input_ids.shape
    if rows % 2 or seq_len < 2:
        return None
    pairs = rows // 2
    lengths = attention_mask.sum(dim=1).tolist()
    scored = (labels != -100).tolist()
    ids = input_ids.tolist()
    packed, positions, segments, shift_labels, source, target = [], [], [], [], [], []
    for i in range(pairs):
        c, r = i, pairs + i
        if not (any(scored[c]) and any(scored[r])):
            return None
        start = scored[c].index(True)
        # Same prompt, answers starting right after it, right padding only: otherwise TRL's layout is used.
        if start < 1 or scored[r].index(True) != start or ids[c][:start] != ids[r][:start]:
            return None
        if not (attention_mask[c, : lengths[c]].all() and attention_mask[r, : lengths[r]].all()):
            return None
        chosen, rejected = ids[c][start : lengths[c]], ids[r][start : lengths[r]]
        prompt = ids[c][:start]
        row = prompt + chosen + [prompt[-1]] + rejected
        pos = list(range(start + len(chosen))) + list(range(start - 1, start + len(rejected)))
        seg = [PROMPT] * (start - 1) + [CHOSEN] * (len(chosen) + 1) + [REJECTED] * (len(rejected) + 1)
        # A position predicts the next token of its own answer; an answer's last token predicts nothing.
        lab = [-100] * len(row)
        for orig, answer, first in ((c, chosen, start - 1), (r, rejected, start + len(chosen))):
            for k, token in enumerate(answer):
                if scored[orig][start + k]:
                    lab[first + k] = token
                    source.append((i, first + k))
                    target.append(orig * (seq_len - 1) + start - 1 + k)
        packed.append(row)
        positions.append(pos)
        segments.append(seg)
        shift_labels.append(lab)
    width = max(len(row) for row in packed)

    def pad(seqs, value):
        return torch.tensor([s + [value] * (width - len(s)) for s in seqs], dtype=torch.long, device=input_ids.device)

    return Packed(
        input_ids=pad(packed, 0),
        position_ids=pad(positions, 0),
        segments=pad(segments, PAD),
        shift_labels=pad(shift_labels, -100),
        source=torch.tensor([i * width + p for i, p in source], dtype=torch.long, device=input_ids.device),
        target=torch.tensor(target, dtype=torch.long, device=input_ids.device),
        rows=rows,
        seq_len=seq_len,
    )


def share_prompts(model) -> bool:
    """Route the fused-head forwards TRL's DPOTrainer makes (policy and reference) through the packed layout.

    `model` is the causal LM that TRL gave a fused LM head (the PEFT base model under LoRA). Returns False, leaving
    the model as it is, for attention kernels that take no custom mask (flash attention, flex attention).
    """
    from trl.trainer.utils import FusedCausalLMOutput

    kind = MASKS.get(model.config._attn_implementation)
    if kind is None:
        return False
    fused = model.forward

    def forward(self, *args, fused_lm_head=False, labels=None, **kwargs):
        packed = None
        others = [k for k, v in kwargs.items() if k not in PACKABLE and v is not None]
        if fused_lm_head and labels is not None and not args and not others and kwargs.get("input_ids") is not None:
            packed = pack_pairs(kwargs["input_ids"], kwargs["attention_mask"], labels)
        if packed is None:
            return fused(*args, fused_lm_head=fused_lm_head, labels=labels, **kwargs)
        out = fused(
            input_ids=packed.input_ids,
            attention_mask=packed.attention_mask(kind, self.dtype),
            position_ids=packed.position_ids,
            shift_labels=packed.shift_labels,
            fused_lm_head=True,
        )
        log_probs = packed.unpack(out.log_probs)
        label_mask = labels[:, 1:] != -100
        return FusedCausalLMOutput(
            loss=-log_probs.sum() / label_mask.sum().clamp(min=1),
            log_probs=log_probs,
            entropy=packed.unpack(out.entropy),
            log_sum_sq_probs=packed.unpack(out.log_sum_sq_probs),
            mean_logits=packed.unpack(out.mean_logits),
            is_top1=packed.unpack(out.is_top1),
            label_mask=label_mask,
        )

    model.forward = types.MethodType(forward, model)
    return True


def share_prompts_in(trainer) -> bool:
    """Pack the policy's forwards and, when the reference is a separate model, the reference's too."""
    policy = trainer.model.get_base_model() if hasattr(trainer.model, "get_base_model") else trainer.model
    done = share_prompts(policy)
    if trainer.ref_model is not None:
        # DeepSpeed wraps the reference in an engine whose forward calls its module's.
        share_prompts(getattr(trainer.ref_model, "module", trainer.ref_model))
    return done
