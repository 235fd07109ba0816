"""The optional stacks installed as extras (pip install 'rlhf_lab[NAME]'), and whether each one is installed.

Most runs need none of them, so they are not installed with the package. A choice that needs one that is missing is
a one-line config error before anything loads. find_spec finds a module without importing it: the config path stays
light.
"""

from __future__ import annotations

import importlib.util

# extra -> (a module it installs, what it is called in a message)
EXTRAS = {
    "deepspeed": ("deepspeed", "DeepSpeed"),
    "slurm": ("hydra_plugins.hydra_submitit_launcher", "Hydra's submitit launcher (hydra-submitit-launcher)"),
    "optuna": ("hydra_plugins.hydra_optuna_sweeper", "Hydra's Optuna sweeper (hydra-optuna-sweeper)"),
}


def installed(extra: str) -> bool:
    try:
        return importlib.util.find_spec(EXTRAS[extra][0]) is not None
    except (ImportError, ValueError):  # its parent package (hydra_plugins) is missing too, or a module left half-set
        return False


def missing_message(extra: str, needed_by: str) -> str:
    return f"{needed_by} needs {EXTRAS[extra][1]}, which is not installed; pip install 'rlhf_lab[{extra}]'"


def missing_plugin(group: str, option: str) -> str | None:
    """The extra whose Hydra plugin would provide this option of a hydra/ group, when that plugin is not installed.

    Hydra finds launchers and sweepers among the installed plugins, so without one it reports only that the option
    is unknown."""
    if group == "hydra/launcher" and option.startswith("submitit_"):
        extra = "slurm"
    elif group == "hydra/sweeper" and option == "optuna":
        extra = "optuna"
    else:
        return None
    return None if installed(extra) else extra
