"""bf16 'auto': on where the hardware runs bf16 matmuls fast, else fp32."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    # AMX (Sapphire Rapids and later) runs bf16 matmuls ~7x faster than fp32; AVX512-BF16 helps less but still wins.
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_bf16(setting) -> bool:
    if setting is True or setting is False:
        return setting
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return cpu_has_fast_bf16()
