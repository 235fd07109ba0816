"""The trainer's side of rlhf_lab.runtime.interrupts: a received signal becomes a checkpoint and a stop at the end
of the optimizer step, on every process at the same step."""

from __future__ import annotations

from transformers import TrainerCallback

from rlhf_lab.runtime.interrupts import STOP, StopSignals


def stop_everywhere(requested: bool) -> bool:
    """Whether any process was asked to stop: every process must stop after the same step, or the collective
    checkpoint save would wait forever."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return requested
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    flag = torch.tensor([1.0 if requested else 0.0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


class StopAtStepEnd(TrainerCallback):
    """Turns a received signal into a checkpoint and a stop at the end of the optimizer step."""

    def __init__(self, stop: StopSignals = STOP):
        self.stop = stop
        self.stopped = False

    def on_step_end(self, args, state, control, **kwargs):
        if stop_everywhere(self.stop.received is not None):
            self.stopped = True
            control.should_save = True
            control.should_training_stop = True
        return control
