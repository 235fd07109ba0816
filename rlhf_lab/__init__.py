"""rlhf_lab: Hydra-configured RLHF experiments on TRL, transformers, peft and DeepSpeed."""

import os as _os

# TRL's trainers report each start to huggingface.co, and huggingface_hub fetches a list from there to describe the
# caller, unless telemetry is off: a run that reads only local models and data must open no connection. The switch
# is read when huggingface_hub is imported, so it is set here, before anything imports it; a value the user set wins.
_os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
