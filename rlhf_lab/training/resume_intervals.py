"""A resumed run logs, evaluates and saves at the intervals of the command that resumed it.

transformers replaces the trainer state with the checkpoint's when it resumes, and with it the logging, eval and
save intervals of the run that wrote the checkpoint; a changed train.save_steps would then silently do nothing."""

from __future__ import annotations

from transformers import TrainerCallback


class CommandIntervals(TrainerCallback):
    def on_train_begin(self, args, state, control, **kwargs):
        state.compute_steps(args, state.max_steps)
        return control
