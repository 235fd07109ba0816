"""Servers on the loopback address for the reward-server and judge tests, with scripted faults."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Script:
    """How the fake server behaves: per request (numbered from 0) a delay, an error status, or a normal answer."""

    def __init__(self, slow: dict[int, float] | None = None, status: dict[int, int] | None = None, stop_after=None):
        self.slow = slow or {}
        self.status = status or {}
        self.stop_after = stop_after  # close the server after this many answered requests (it "dies")
        self.requests: list[dict] = []
        self.headers: list[dict] = []


def length_rewards(request: dict) -> dict:
    """The protocol's answer: each completion's length plus its row's `solution` (a column), as a number."""
    solutions = request.get("columns", {}).get("solution", [0] * len(request["completions"]))
    return {"rewards": [float(len(c)) + float(s) for c, s in zip(request["completions"], solutions)]}


def start(script: Script, answer=length_rewards):
    """A server in a thread; returns (server, base URL)."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                index = len(script.requests)
                script.requests.append(body)
                script.headers.append(dict(self.headers))
            time.sleep(script.slow.get(index, 0.0))
            status = script.status.get(index, 200)
            payload = answer(body) if status == 200 else {"error": f"scripted {status}"}
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and left
            if script.stop_after is not None and index + 1 >= script.stop_after:
                threading.Thread(target=lambda: (server.shutdown(), server.server_close()), daemon=True).start()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def chat_reply(text_for):
    """An OpenAI-compatible chat completion answer whose content is text_for(the user message)."""

    def answer(request: dict) -> dict:
        content = text_for(request["messages"][-1]["content"])
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}

    return answer
