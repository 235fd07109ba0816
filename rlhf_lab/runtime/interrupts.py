"""Stopping on a signal without losing the run: SIGTERM (what SLURM and most schedulers send before they stop or
preempt a job), SIGINT (Ctrl-C), and SIGUSR2 where submitit listens for it (its preemption and time-limit signal).

While the run trains, the first signal only asks for a stop: at the end of the current optimizer step the trainer
saves a checkpoint and returns, and the run ends as `interrupted`. A second signal, or one that arrives before or
after training, stops at once. Once the checkpoint is written, the signal's earlier Python handler, if there was one,
still runs (submitit's requeues the job, which then resumes from that checkpoint). A process that only waits for its
torch.distributed workers passes each signal on to them instead.
"""

from __future__ import annotations

import logging
import signal
from contextlib import contextmanager

from rlhf_lab.errors import Interrupted

log = logging.getLogger("rlhf_lab")


class StopSignals:
    def __init__(self):
        self.received: int | None = None
        self.training = False
        self.child = None  # a launcher process whose workers get the signals
        self.previous: dict[int, object] = {}

    @staticmethod
    def watched() -> list[int]:
        sigs = [signal.SIGTERM, signal.SIGINT]
        if callable(signal.getsignal(signal.SIGUSR2)):  # someone (submitit) handles it: take part
            sigs.append(signal.SIGUSR2)
        return sigs

    def install(self) -> None:
        for sig in self.watched():
            self.previous[sig] = signal.signal(sig, self._handle)

    def ignore(self) -> None:
        """From now on, until the process ends, the watched signals do nothing: a failing worker leaves its report
        and its exit code, whatever torchrun sends the other ranks meanwhile."""
        for sig in self.previous:
            signal.signal(sig, signal.SIG_IGN)
        self.previous.clear()  # nothing for restore() to put back

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous.clear()

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received else ""

    def _handle(self, signum, frame) -> None:
        if self.child is not None:
            self.received = self.received or signum
            # torchrun passes SIGTERM and SIGINT on to its workers; SIGUSR2 would just kill it.
            self.child.send_signal(signal.SIGTERM if signum == signal.SIGUSR2 else signum)
            return
        if self.training and self.received is None:
            self.received = signum
            log.warning(
                "%s received: stopping after this optimizer step with a checkpoint (send it again to stop at once)",
                signal.Signals(signum).name,
            )
            return
        raise Interrupted(signal.Signals(signum).name, exit_code=128 + signum)

    def hand_over(self) -> None:
        """After the checkpoint: let the earlier handler of the signal act (submitit's requeues and exits)."""
        handler = self.previous.get(self.received)
        # Python's own SIGINT handler would only raise KeyboardInterrupt over the clean exit.
        if callable(handler) and handler is not signal.default_int_handler:
            self.restore()
            handler(self.received, None)


# One per process: the job installs it, the trainer's callback and the launcher read it.
STOP = StopSignals()


@contextmanager
def stop_signals():
    STOP.received, STOP.training, STOP.child = None, False, None
    STOP.install()
    try:
        yield STOP
    finally:
        STOP.restore()


@contextmanager
def training_phase():
    """Signals during training stop at the next step boundary (with a checkpoint) instead of at once."""
    STOP.training = True
    try:
        yield
    finally:
        STOP.training = False
