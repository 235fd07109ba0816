"""Start the run's training processes. distributed=single trains in this process; the scale-out
backends (torchrun workers reading the resolved config) plug in here."""

from __future__ import annotations

from rlhf_lab.run import Run


def launch(run: Run) -> dict:
    from rlhf_lab.pipeline import train

    return train(run)
