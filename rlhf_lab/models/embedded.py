"""A GGUF model shipped in a Python package, converted once into a plain safetensors checkpoint.

transformers dequantizes GGUF on load (~15 s for SmolLM2-135M) and keeps a quantization_config that
makes Trainer refuse to train and save_pretrained refuse to save. We rebuild a plain model from the
config without it, save it to the cache once, and load the cached copy (well under a second) afterwards.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path

from rlhf_lab.paths import build_once, cache_dir, publish_cache_entry

log = logging.getLogger(__name__)


def converted_dir(gguf_path: Path) -> Path:
    stat = gguf_path.stat()
    key = hashlib.sha1(f"{gguf_path.resolve()}:{stat.st_size}".encode()).hexdigest()[:10]
    return cache_dir() / "models" / f"{gguf_path.stem}-{key}"


def ensure_converted(gguf_path: Path) -> Path:
    """Return a local checkpoint dir for the GGUF file, converting it on first use."""
    target = converted_dir(gguf_path)
    return build_once(target, lambda: _convert(gguf_path, target))


def _convert(gguf_path: Path, target: Path) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to a safetensors checkpoint in %s (once)", gguf_path.name, target)
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantized.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise RuntimeError(f"GGUF conversion lost weights: missing={missing} unexpected={unexpected}")
    if missing:  # tied embeddings: lm_head shares embed_tokens
        plain.tie_weights()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    plain.generation_config.save_pretrained(tmp)
    publish_cache_entry(tmp, target)
    return target
