"""Outbound calls through Sinch's Callouts REST API (`POST /calling/v1/callouts`), signed with the
application's key and secret like every Sinch REST request (gateway.signing). Also a Python API:

    client = CalloutClient(load_config())
    client.conference(to="+46700000001", conference_id="room-1")   # a phone party into a conference
    client.stream(route="asr", rate=16000, conference_id="room-1")  # a stream leg to this gateway

A stream leg's call id is Sinch's to choose, so its stream token binds route, rate and expiry but not the
call id; it is still single-use. Voice API 2.0's calls: gateway.control.calls_v2.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

from gateway.control import ice
from gateway.control.sinch_http import JSON, CalloutError, post
from gateway.core import signing
from gateway.shared.config import EMBEDDED_ECHO_ROUTE, MAX_CALL_HEADERS, SINCH_RATES, Config, call_header_problem

CALLOUTS_PATH = "/calling/v1/callouts"


def check_stream(config: Config, route: str, rate: int, headers: dict[str, str]) -> None:
    """CalloutError unless a stream leg to `route` at `rate` with `headers` is one this gateway and Sinch take."""
    known = set(config.routes) or {EMBEDDED_ECHO_ROUTE}
    if route not in known:
        raise CalloutError(f"route {route!r} is not configured (known: {', '.join(sorted(known))})")
    if rate not in SINCH_RATES:
        raise CalloutError(f"rate {rate}: must be one of {SINCH_RATES}")
    if len(headers) > MAX_CALL_HEADERS:
        raise CalloutError(f"at most {MAX_CALL_HEADERS} call headers")
    for key, value in headers.items():
        if problem := call_header_problem(key, value):
            raise CalloutError(problem)


class CalloutClient:
    def __init__(self, config: Config) -> None:
        if not (config.sinch_application_key and config.sinch_application_secret):
            raise CalloutError("SINCH_APPLICATION_KEY and SINCH_APPLICATION_SECRET are needed to place callouts")
        self.config = config
        self.signer = signing.Signer(signing.APPLICATION, config.sinch_application_key, config.sinch_application_secret)

    def stream(
        self, route: str, rate: int = 8000, conference_id: str = "", cli: str = "", max_duration: int = 0,
        headers: dict[str, str] | None = None, custom: str = "",
    ) -> dict[str, Any]:
        """customCallout whose ICE is a connectStream action to `route`; with `conference_id`, its ACE joins
        the leg to that conference (ACE may answer connectConf, protocol notes §1)."""
        check_stream(self.config, route, rate, headers or {})
        svaml = ice.connect_stream(self.config, "", route, rate, max_duration, headers or {}, time.time())
        callout: dict[str, Any] = {"ice": json.dumps(svaml)}
        if conference_id:
            callout["ace"] = json.dumps({"action": {"name": "connectConf", "conferenceId": conference_id}})
        if cli:
            callout["cli"] = cli
        if custom:
            callout["custom"] = custom
        return self._post({"method": "customCallout", "customCallout": callout})

    def conference(
        self, to: str, conference_id: str, cli: str = "", destination_type: str = "number", greeting: str = "",
        enable_dice: bool = True,
    ) -> dict[str, Any]:
        """conferenceCallout: dial a PSTN, SIP or in-app party into `conference_id`."""
        callout: dict[str, Any] = {
            "destination": {"type": destination_type, "endpoint": to},
            "conferenceId": conference_id,
            "enableDice": enable_dice,
        }
        if cli:
            callout["cli"] = cli
        if greeting:
            callout["greeting"] = greeting
        return self._post({"method": "conferenceCallout", "conferenceCallout": callout})

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(payload).encode()
        url = self.config.sinch_api_base.rstrip("/") + CALLOUTS_PATH
        stamp = signing.utc_timestamp()
        return post(url, body, {
            "Content-Type": JSON,
            "x-timestamp": stamp,
            "Authorization": signing.authorization(self.signer, "POST", body, JSON, stamp, urlsplit(url).path),
        })
