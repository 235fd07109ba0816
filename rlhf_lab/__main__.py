"""python -m rlhf_lab [group=option ...] [key=value ...] [-m for sweeps]"""

import sys


def main() -> None:
    from rlhf_lab.cli.main import main as cli_main
    from rlhf_lab.runtime.ranks import leave_group

    code = cli_main()
    if code == 0:
        leave_group()  # started by torchrun: the group the run joined
    sys.exit(code)


if __name__ == "__main__":
    main()
