"""Accelerators a plan can be checked against: usable memory (GiB) and dense bf16 peak (TFLOP/s), from the vendors'
data sheets. Plans assume a model FLOP utilisation (plan.mfu) of that peak."""

from __future__ import annotations

ACCELERATORS: dict[str, tuple[float, float]] = {
    "h100": (80.0, 989.0),
    "h200": (141.0, 989.0),
    "a100_80g": (80.0, 312.0),
    "a100_40g": (40.0, 312.0),
    "l40s": (48.0, 362.0),
    "rtx4090": (24.0, 165.0),
}
