"""Per-device memory of a run, by part, from its settings and its models' shapes.

Bytes are counted as the training holds them:
- weights: 2 bytes per parameter in bf16, 4 in fp32; with LoRA the frozen base keeps that width and the adapters
  are fp32;
- gradients: one per trainable parameter, the trainable weights' width;
- optimizer: AdamW's two moments per trainable parameter at the weights' width, or under DeepSpeed an fp32 master
  copy and two fp32 moments (12 bytes) per trainable parameter;
- ZeRO stage 1 shards the optimizer over the processes, stage 2 also the gradients, stage 3 (and FSDP) also the
  weights; offloading moves the optimizer (and, for parameters, the weights) to CPU memory;
- activations kept for backward, per token and layer: the saved inputs and outputs of the attention and MLP blocks
  (6 hidden + 2 key/value + 4 intermediate values); with gradient checkpointing only each layer's input (1 hidden)
  plus one layer recomputed in full; and the logits over the vocabulary (bf16 logits, fp32 log-probs and their
  gradient: 10 bytes per vocabulary entry in bf16 runs, 12 in fp32);
- frozen models (reference, reward, teacher) at the weights' width, a generation copy in bf16 (twice: it is built
  from a full copy of the policy), and the KV cache of
  the answers being generated;
- on a CPU, the checkpoint file, which stays mapped into the process after loading (and under ZeRO-3 the fp32 model
  each process builds while loading; training/pipeline.py adds both).
"""

from __future__ import annotations

from dataclasses import dataclass

from rlhf_lab.planning.facts import PlanFacts
from rlhf_lab.planning.shape import Shape

ADAM_STATES = 2
DEEPSPEED_OPTIMIZER_BYTES = 12  # fp32 master copy + two fp32 moments


@dataclass(frozen=True)
class Setup:
    """The settings that decide memory, taken from a Run (or written out by hand in tests)."""

    shape: Shape
    lora_rank: int | None  # None = full tuning
    lora_targets: list[str] | str
    bf16: bool
    micro_batch: int  # rows per device per micro-batch
    max_length: int
    gradient_checkpointing: bool
    engine: str  # single, ddp, deepspeed, fsdp
    world: int = 1
    zero_stage: int = 0
    offload_optimizer: bool = False
    offload_param: bool = False
    facts: PlanFacts = PlanFacts()
    other_shapes: dict | None = None  # role -> Shape of a frozen/trained model with its own checkpoint
    vocab_logits: bool = True  # False for a reward model's one-score head
    # Tokens per sequence when the data is known (the longest row, or prompt plus answer); None = max_length.
    sequence_tokens: int | None = None
    # On a CPU the loaded checkpoint file stays mapped into the process: its bytes count in resident memory.
    host_checkpoint_bytes: float = 0.0


def _width(bf16: bool) -> int:
    return 2 if bf16 else 4


def policy_parts(s: Setup, shape: Shape | None = None) -> dict[str, float]:
    """Weights, gradients and optimizer state of one trained model, per device."""
    shape = shape or s.shape
    w = _width(s.bf16)
    full = s.lora_rank is None
    n_train = shape.params if full else shape.lora_params(s.lora_rank, s.lora_targets)
    train_width = w if full else 4
    weights = shape.params * w if full else shape.params * w + n_train * 4
    grads = n_train * train_width
    deepspeed = s.engine == "deepspeed"
    optimizer = n_train * (DEEPSPEED_OPTIMIZER_BYTES if deepspeed and full else ADAM_STATES * train_width)
    stage = s.zero_stage if deepspeed else (3 if s.engine == "fsdp" else 0)
    shards = max(s.world, 1)
    if stage >= 1:
        optimizer /= shards
    if stage >= 2:
        grads /= shards
    if stage >= 3:
        weights /= shards
    if s.offload_optimizer:
        optimizer = 0.0
    if s.offload_param:
        weights = 0.0
    return {"weights": weights, "gradients": grads, "optimizer": optimizer}


def activations(s: Setup, checkpointing: bool | None = None) -> float:
    """Activation memory of one micro-batch's forward kept for backward (bytes)."""
    checkpointing = s.gradient_checkpointing if checkpointing is None else checkpointing
    sh = s.shape
    w = _width(s.bf16)
    tokens = s.micro_batch * s.facts.sequences_per_row * (s.sequence_tokens or s.max_length)
    full_layer = 6 * sh.hidden + 2 * sh.kv_heads * sh.head_dim + 4 * sh.intermediate
    # Checkpointing keeps each layer's input and recomputes one layer at a time.
    per_token = sh.layers * sh.hidden + full_layer if checkpointing else sh.layers * full_layer
    logits = sh.vocab * (10 if s.bf16 else 12) if s.vocab_logits else 0
    return tokens * (per_token * w + logits)


def kv_cache(s: Setup) -> float:
    if not s.facts.generated_tokens:
        return 0.0
    sh = s.shape
    per_token = 2 * sh.layers * sh.kv_heads * sh.head_dim * _width(s.bf16)
    return s.micro_batch * (s.sequence_tokens or s.max_length) * per_token


def breakdown(s: Setup) -> dict[str, float]:
    """Bytes per device by part, and their total."""
    parts = policy_parts(s)
    parts["activations"] = activations(s)
    others = s.other_shapes or {}
    w = _width(s.bf16)
    for role in s.facts.frozen:
        shape = others.get(role) or s.shape
        held = shape.params * w
        if s.engine == "fsdp" or (s.engine == "deepspeed" and s.zero_stage == 3):
            held /= max(s.world, 1)
        parts[role] = held
    for role in s.facts.trained:
        trained = policy_parts(s, others.get(role) or s.shape)
        parts[role] = sum(trained.values())
    if s.facts.generation_copy:
        # Built from a full copy of the policy, merged and cast: two bf16 copies at its peak.
        parts["generation copy"] = s.shape.params * 2 * 2
    if s.facts.generated_tokens:
        parts["kv cache"] = kv_cache(s)
    if s.host_checkpoint_bytes:
        parts["checkpoint file"] = s.host_checkpoint_bytes
    parts["total"] = sum(parts.values())
    return parts


def flops_per_step(s: Setup, accumulation: int) -> float:
    """Model FLOPs of one optimizer step on one device: 2 per parameter per token forward, 4 backward (2 with LoRA,
    which computes no weight gradients for the frozen base), 2 per token for each frozen model's forward, and 2 per
    generated token."""
    tokens = s.micro_batch * s.facts.sequences_per_row * s.max_length * accumulation
    backward = 4 if s.lora_rank is None else 2
    per_token = (2 + backward) * s.shape.params
    others = s.other_shapes or {}
    per_token += sum(2 * (others.get(r) or s.shape).params for r in s.facts.frozen)
    per_token += sum(6 * (others.get(r) or s.shape).params for r in s.facts.trained)
    generated = s.micro_batch * accumulation * s.facts.generated_tokens * 2 * s.shape.params
    return tokens * per_token + generated
