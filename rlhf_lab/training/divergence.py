"""A run whose loss or gradient norm turns NaN or infinite stops there, as failed: its weights are garbage from that
step on, so nothing is saved as if it had finished (train.stop_on_nan=false lets it run on)."""

from __future__ import annotations

import math

from transformers import TrainerCallback

WATCHED = ("loss", "grad_norm")


class StopOnNonFinite(TrainerCallback):
    def __init__(self):
        self.found: tuple[str, float, int] | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in WATCHED:
            value = (logs or {}).get(key)
            if isinstance(value, (int, float)) and not math.isfinite(value) and self.found is None:
                self.found = (key, value, state.global_step)
                control.should_training_stop = True
                control.should_save = False
        return control
