"""Where rlhf_lab changes the libraries' own code paths, gathered in one place.

- scored_positions: TRL's fused LM head takes its compact path on CPUs too (a module attribute of trl.trainer.utils,
  process-wide: job_scope puts it back when a job ends, so that the jobs of a sweep start from the library's state);
- shared_prompt: a preference pair's prompt runs once (the forward TRL installs on the model instance is wrapped).

Trainer subclasses override the private hooks of their library class in their own modules (algorithms/); every
private name of a library that rlhf_lab relies on is checked by tests/test_library_contract.py.
"""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def job_scope():
    """Module attributes of the libraries as they were before the job, whatever the job patched."""
    import trl.trainer.utils as trl_utils

    saved = trl_utils._use_triton
    try:
        yield
    finally:
        trl_utils._use_triton = saved
