"""Hydra's own command-line flags, as its argument parser defines them (hydra/_internal/utils.py, get_args_parser)."""

# Hydra's flags that take a value, and those that choose what the command does (at most one of these).
VALUE_FLAGS = {
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--experimental-rerun",
}
MODE_FLAGS = {
    "--run": "--run",
    "-r": "--run",
    "--multirun": "--multirun",
    "-m": "--multirun",
    "--cfg": "--cfg",
    "-c": "--cfg",
    "--info": "--info",
    "-i": "--info",
    "--shell-completion": "--shell-completion",
    "-sc": "--shell-completion",
}
INFO_TOPICS = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}
# Every flag Hydra knows: anything else that starts with '-' is somebody else's (an ms-swift flag, a typo).
HYDRA_FLAGS = {"--help", "-h", "--hydra-help", "--version", "--resolve", *VALUE_FLAGS, *MODE_FLAGS}
