"""JSON over HTTP for rewards scored elsewhere (a reward server, an LLM judge): one request with a timeout, retried
with exponential backoff while the service is down or overloaded; the standard library only, no torch."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass


class ServiceUnavailable(Exception):
    """The service did not give a usable answer within its tries."""


class ServiceRefused(Exception):
    """The service answered that the request itself is wrong (HTTP 4xx other than 408/429): retrying cannot help."""


# Worth another try: timeouts, overload and server-side failures.
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class Retrying:
    timeout: float  # seconds per request
    retries: int  # further tries after the first
    backoff: float  # seconds before the first retry, doubled before each next one


def post_json(url: str, body: dict, policy: Retrying, headers: dict | None = None) -> dict:
    """The JSON object the service answers to body; ServiceUnavailable after policy.retries further tries."""
    data = json.dumps(body).encode()
    request_headers = {"Content-Type": "application/json", **(headers or {})}
    why = ""
    for attempt in range(policy.retries + 1):
        if attempt:
            time.sleep(policy.backoff * 2 ** (attempt - 1))
        request = urllib.request.Request(url, data=data, headers=request_headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=policy.timeout) as response:
                answer = json.loads(response.read())
            if not isinstance(answer, dict):
                raise ValueError(f"expected a JSON object, got {type(answer).__name__}")
            return answer
        except urllib.error.HTTPError as e:
            detail = " ".join(e.read().decode(errors="replace").split())[:200]
            if e.code not in _RETRY_STATUS:
                raise ServiceRefused(f"{url} answered HTTP {e.code}: {detail}") from None
            why = f"HTTP {e.code} {detail}".strip()
        except TimeoutError:
            why = f"no answer within {policy.timeout:g} s"
        except (urllib.error.URLError, ConnectionError, OSError) as e:
            why = str(getattr(e, "reason", e))
        except ValueError as e:  # a body that is not the JSON object expected
            why = f"an unreadable answer ({e})"
    raise ServiceUnavailable(f"{url} gave no usable answer in {policy.retries + 1} tries (last: {why})")
