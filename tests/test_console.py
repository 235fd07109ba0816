"""What a person sees in a terminal while a run trains: progress, key metrics, the result; no library noise."""

import os
import pty
import re
import select
import subprocess
import sys

import pytest
from conftest import TINY

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")
NOISE = (
    "FutureWarning",
    "{'loss'",
    "it/s]",
    "Setting accelerator to CPU",
    "Tokenizing train dataset",
    "Loading weights",
)


def _in_a_terminal(args, cwd) -> tuple[int, str]:
    """Run the command line in a pseudo-terminal, as a person's shell runs it; return its exit code and text."""
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlhf_lab", *args],
        stdin=child,
        stdout=child,
        stderr=child,
        cwd=cwd,
        env={**os.environ, "WANDB_SILENT": "true", "COLUMNS": "120"},
    )
    os.close(child)
    seen = b""
    while True:
        ready, _, _ = select.select([main], [], [], 1)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    os.close(main)
    return proc.wait(timeout=60), ANSI.sub("", seen.decode(errors="replace"))


@pytest.mark.slow
def test_a_run_in_a_terminal_shows_progress_metrics_and_the_result_without_library_noise(tmp_path, tiny_model_dir):
    code, text = _in_a_terminal([*TINY, "train.max_steps=3", f"hydra.run.dir={tmp_path}/run"], tmp_path)
    assert code == 0, text[-3000:]
    for step in (1, 2, 3):
        assert re.search(rf"step {step}/3  loss \d", text), text[-3000:]
    assert "rewards/margins" in text and "held-out evaluation" in text and "trained 3 steps" in text
    assert not [n for n in NOISE if n in text], text[-3000:]
    log = (tmp_path / "run" / "rlhf_lab.log").read_text()
    assert "FutureWarning" in log  # the libraries' warnings are kept in the run's log file


@pytest.mark.slow
def test_verbose_brings_the_libraries_output_back(tmp_path, tiny_model_dir):
    code, text = _in_a_terminal([*TINY, "logger.verbose=true", f"hydra.run.dir={tmp_path}/run"], tmp_path)
    assert code == 0, text[-3000:]
    assert "FutureWarning" in text
