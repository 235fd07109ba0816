"""The measured side of a run's memory plan: the peak memory training reached, beside the planner's estimate.

CUDA: torch.cuda.max_memory_allocated, reset just before the model loads. CPU: the process's peak resident memory
(VmHWM) growth over its resident memory just before the model loads; the peak is reset there through
/proc/self/clear_refs where the kernel allows it (Linux), so earlier peaks (reading the data) do not count. Memory
freed before that point (a model conversion into the cache, in this process) is handed back to the system first:
kept by the allocator, it would count in the baseline and then be reused by the model, hiding part of the peak."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
from pathlib import Path

MB = 1024**2


def _release_free_memory() -> None:
    """Return the C heap's free memory to the system (glibc's malloc_trim; elsewhere nothing to do)."""
    gc.collect()
    # Not glibc: its allocator keeps the memory, and the baseline counts it.
    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakMemory:
    def __init__(self):
        import torch

        self.cuda = torch.cuda.is_available()
        self.baseline = 0
        self.reset_ok = True
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            self.baseline = torch.cuda.memory_allocated()
            return
        _release_free_memory()
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident size
        except OSError:
            self.reset_ok = False
        self.baseline = (_status_kb("VmRSS") or 0) * 1024

    def measured_bytes(self) -> int | None:
        if self.cuda:
            import torch

            return torch.cuda.max_memory_allocated() - self.baseline
        peak = _status_kb("VmHWM")
        if peak is None or not self.reset_ok:
            return None
        return peak * 1024 - self.baseline


def memory_plan(estimate: float | None, measured: int | None) -> dict | None:
    if estimate is None or not measured:
        return None
    return {
        "estimate_mb": round(estimate / MB, 1),
        "measured_mb": round(measured / MB, 1),
        "ratio": round(estimate / measured, 3),
    }
