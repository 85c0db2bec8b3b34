"""The HTTP of the gateway's requests to Sinch's REST APIs (callouts, Voice API 2.0 calls, OAuth2 tokens):
JSON in, JSON out, every failure a CalloutError that says what Sinch answered. Blocking (urllib): a command-line
tool and a Python API, never on the control process's loop.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

TIMEOUT = 10.0
JSON = "application/json"


class CalloutError(RuntimeError):
    """Sinch refused a request (or could not be reached); the message says which and why."""


class Refused(CalloutError):
    """Sinch answered with an error status; `challenge` is its WWW-Authenticate header (RFC 9110 §11.6.1)."""

    def __init__(self, status: int, text: str, challenge: str) -> None:
        super().__init__(f"Sinch answered {status}: {text[:500]}")
        self.status = status
        self.challenge = challenge


def post(url: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """POST `body` to `url`; Sinch's JSON answer ({} when it has none)."""
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            answer = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raise Refused(exc.code, exc.read().decode(errors="replace"), exc.headers.get("WWW-Authenticate", "")) from None
    except (urllib.error.URLError, TimeoutError) as exc:
        raise CalloutError(f"cannot reach {url}: {exc}") from None
    except ValueError:
        raise CalloutError(f"{url} answered with something other than JSON") from None
    if not isinstance(answer, dict):
        raise CalloutError(f"{url} answered with JSON that is not an object")
    return answer
