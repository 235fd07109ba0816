"""Run the command line (rlhf_lab.cli.main.main) with a Python audit hook that records every network lookup and
connection it opens, then write them as JSON to the file named by COUNT_NETWORK_OUT.

    python tests/helpers/count_network.py ARGS...

The hook is installed before rlhf_lab or any library is imported, so a lookup made at import time counts too.

To stand in for a network where the Hub cannot be reached, COUNT_NETWORK_FAKE_DNS=HOST=IP*N makes HOST resolve to N
addresses, IP and the N-1 after it (a public host has several, each of which a client may try in turn), and
COUNT_NETWORK_DNS_DELAY=SECONDS makes every lookup of HOST take that long first (a resolver that does not answer)."""

from __future__ import annotations

import json
import os
import sys

EVENTS = ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex", "socket.gethostbyaddr")
CONNECT = ("socket.connect", "socket.connect_ex")
seen: list[dict] = []


def host_of(event: str, args: tuple) -> str | None:
    if event in EVENTS:
        return str(args[0])
    address = args[1]
    if isinstance(address, tuple) and address:
        return str(address[0])
    return None  # a Unix socket or the like: not the network


def hook(event: str, args: tuple) -> None:
    if event in EVENTS or event in CONNECT:
        host = host_of(event, args)
        if host is not None:
            seen.append({"event": event, "host": host})


def fake_dns(spec: str, delay: float) -> None:
    import ipaddress
    import socket
    import time

    host, _, target = spec.partition("=")
    ip, _, count = target.partition("*")
    real = socket.getaddrinfo

    def getaddrinfo(name, port, *args, **kwargs):
        if name != host:
            return real(name, port, *args, **kwargs)
        time.sleep(delay)
        first = ipaddress.ip_address(ip)
        return [
            (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (str(first + k), port))
            for k in range(int(count or 1))
        ]

    socket.getaddrinfo = getaddrinfo


def main() -> int:
    if os.environ.get("COUNT_NETWORK_FAKE_DNS"):
        fake_dns(os.environ["COUNT_NETWORK_FAKE_DNS"], float(os.environ.get("COUNT_NETWORK_DNS_DELAY", "0")))
    sys.addaudithook(hook)
    from rlhf_lab.cli.main import main as cli_main

    sys.argv = ["rlhf_lab", *sys.argv[1:]]
    try:
        code = cli_main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    with open(os.environ["COUNT_NETWORK_OUT"], "w") as f:
        json.dump({"exit_code": code, "lookups": seen}, f)
    return code


if __name__ == "__main__":
    sys.exit(main())
