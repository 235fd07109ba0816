"""python -m rlhf_lab [group=option ...] [key=value ...] [-m for sweeps]"""

import sys


def main() -> None:
    from rlhf_lab.cli.main import main as cli_main

    sys.exit(cli_main())


if __name__ == "__main__":
    main()
