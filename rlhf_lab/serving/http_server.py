"""The reward protocol's server side (see rlhf_lab/rewards/remote.py), over any score function: a threaded HTTP server
on the standard library; requests are scored one at a time (the model is not shared between threads)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger("rlhf_lab")

Score = Callable[[list, list[str], dict], list]


class RewardHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], score: Score, name: str, max_body: int = 64 * 2**20):
        super().__init__(address, _Handler)
        self.score = score
        self.name = name
        self.max_body = max_body  # bytes; a client must not make the server hold an unbounded body
        self.lock = threading.Lock()
        self.scored = 0


def read_request(body: bytes) -> tuple[list, list[str], dict]:
    """(prompts, completions, columns) of a request; ValueError saying what is wrong."""
    try:
        request = json.loads(body)
    except json.JSONDecodeError as e:
        raise ValueError(f"the body is not JSON ({e})") from None
    if not isinstance(request, dict):
        raise ValueError("the body must be a JSON object with prompts and completions")
    completions = request.get("completions")
    if not isinstance(completions, list) or not all(isinstance(c, str) for c in completions):
        raise ValueError("completions must be a list of strings")
    prompts = request.get("prompts", [""] * len(completions))
    columns = request.get("columns", {})
    if not isinstance(prompts, list) or len(prompts) != len(completions):
        raise ValueError(f"prompts must be a list of {len(completions)} (one per completion)")
    if not isinstance(columns, dict) or any(
        not isinstance(v, list) or len(v) != len(completions) for v in columns.values()
    ):
        raise ValueError(f"columns must map names to lists of {len(completions)} values")
    return prompts, completions, columns


class _Handler(BaseHTTPRequestHandler):
    server: RewardHTTPServer

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self._send(200, {"status": "ok", "model": self.server.name, "scored": self.server.scored})

    def do_POST(self) -> None:  # noqa: N802
        try:
            length = int(self.headers.get("Content-Length", 0))
        except ValueError:
            self._send(400, {"error": "Content-Length is not a number"})
            return
        if not 0 <= length <= self.server.max_body:
            self.close_connection = True  # the body is left unread
            self._send(413, {"error": f"the body must be 0 to {self.server.max_body} bytes, not {length}"})
            return
        try:
            prompts, completions, columns = read_request(self.rfile.read(length))
        except ValueError as e:
            self._send(400, {"error": str(e)})
            return
        try:
            with self.server.lock:
                rewards = [float(r) for r in self.server.score(prompts, completions, columns)] if completions else []
        except Exception as e:  # noqa: BLE001 - a scoring failure is the client's 500, not the server's end
            # The details (paths, values) stay in the server's log; the client learns the kind of failure.
            log.exception("scoring failed")
            self._send(500, {"error": f"scoring failed ({type(e).__name__}); see the server's log"})
            return
        self.server.scored += len(rewards)
        self._send(200, {"rewards": rewards})

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the http.server API
        log.debug("%s - %s", self.address_string(), format % args)
