"""Where rlhf_lab changes the libraries' own code paths, gathered in one place.

- scored_positions: TRL's fused LM head takes its compact path on CPUs too (a module attribute of trl.trainer.utils,
  process-wide: job_scope puts it back when a job ends, so that the jobs of a sweep start from the library's state);
- shared_prompt: a preference pair's prompt runs once (the forward TRL installs on the model instance is wrapped).

Trainer subclasses override the private hooks of their library class in their own modules (algorithms/); every
private name of a library that rlhf_lab relies on is checked by tests/test_library_contract.py.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager


@contextmanager
def job_scope():
    """The libraries' module attributes as the library defines them once the job ends, whatever the job patched.
    Nothing is imported here: a bad row must still stop the run before TRL loads."""
    try:
        yield
    finally:
        if "trl.trainer.utils" in sys.modules:
            from rlhf_lab.patches.scored_positions import score_every_position

            score_every_position()
