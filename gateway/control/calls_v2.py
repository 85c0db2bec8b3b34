"""Outbound calls through Voice API 2.0 (`POST /v2/projects/{project}/calls?serviceId=...`), authenticated with
the project's access key: an OAuth2 bearer token (gateway.control.oauth) or, for testing, Basic. Also a Python
API:

    client = VoiceV2Client(load_config())
    client.stream(route="asr", rate=16000)                              # a session with a stream leg alone
    client.call(to="+46700000001", cli="+46812345678", route="asr")     # a phone leg bridged to a stream leg

Each answer is Sinch's: {"projectId", "serviceId", "sessionId"}. The stream leg joins the bridge `gateway`, so
legs added later through the mid-call API (PATCH /v2/projects/{project}/sessions/{sessionId}/...) can join it.
Each request carries an Idempotency-Key of its own (Sinch keeps it 10 minutes), also when it is sent again with
a renewed token.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

from gateway.control import ice, svaml_v2
from gateway.control.callouts import check_stream
from gateway.control.oauth import OAuth2Token, basic
from gateway.control.sinch_http import JSON, CalloutError, Refused, post
from gateway.shared.config import Config

RING_TIMEOUT = 60  # seconds a phone leg may ring


class VoiceV2Client:
    def __init__(self, config: Config, clock: Callable[[], float] = time.monotonic) -> None:
        if not (config.sinch_project_id and config.sinch_key_id and config.sinch_key_secret):
            raise CalloutError("SINCH_PROJECT_ID, SINCH_KEY_ID and SINCH_KEY_SECRET (the project's access key) are "
                               "needed to place Voice API 2.0 calls")
        self.config = config
        self.token = (OAuth2Token(config.sinch_auth_url, config.sinch_key_id, config.sinch_key_secret, clock)
                      if config.sinch_voice_auth == "oauth2" else None)

    @property
    def url(self) -> str:
        url = f"{self.config.voice_api_base}/v2/projects/{quote(self.config.sinch_project_id, safe='')}/calls"
        service = self.config.sinch_service_id
        return f"{url}?{urlencode({'serviceId': service})}" if service else url

    def stream(self, route: str, rate: int = 8000, max_duration: int = 0, headers: dict[str, str] | None = None,
               bridge: str = svaml_v2.BRIDGE) -> dict[str, Any]:
        """A session whose one leg is a stream to `route`, in `bridge`."""
        routing = self._routing(route, rate, max_duration, headers)
        expires = int(time.time() + self.config.token_ttl)
        return self.start([svaml_v2.dial_stream(self.config, routing, expires, bridge_name=bridge)])

    def call(self, to: str, route: str, rate: int = 8000, cli: str = "", max_duration: int = 0,
             headers: dict[str, str] | None = None, ring_timeout: int = RING_TIMEOUT) -> dict[str, Any]:
        """Dial `to` from `cli`; once it answers, it joins a bridge and a stream leg to `route` is dialled into
        it. Either leg ending ends the other. The stream token lasts the ringing too."""
        routing = self._routing(route, rate, max_duration, headers)
        expires = int(time.time() + ring_timeout + self.config.token_ttl)
        stream = svaml_v2.dial_stream(self.config, routing, expires, partner=svaml_v2.PHONE)
        phone = svaml_v2.dial_phone(to, cli, ring_timeout, on_answer=[svaml_v2.bridge(), stream],
                                    on_end=[svaml_v2.hangup(svaml_v2.STREAM)])
        return self.start([phone])

    def start(self, commands: list[dict[str, Any]]) -> dict[str, Any]:
        """POST a session's SVAML commands; sent once more with a renewed token if Sinch says it expired."""
        body = json.dumps({"commands": commands}).encode()
        headers = {"Content-Type": JSON, "Accept": JSON, "Idempotency-Key": str(uuid.uuid4())}
        credentials = self._credentials()
        try:
            return post(self.url, body, {**headers, "Authorization": credentials})
        except Refused as exc:
            # Sinch's SDK renews on a 401 whose challenge says "expired" (RFC 6750 §3.1 invalid_token)
            if self.token is None or exc.status != 401 or "expired" not in exc.challenge.lower():
                raise
        fresh = "Bearer " + self.token.renew(credentials.removeprefix("Bearer "))
        return post(self.url, body, {**headers, "Authorization": fresh})

    def _credentials(self) -> str:
        if self.token is None:
            return basic(self.config.sinch_key_id, self.config.sinch_key_secret)
        return "Bearer " + self.token.bearer()

    def _routing(self, route: str, rate: int, max_duration: int, headers: dict[str, str] | None) -> ice.Routing:
        check_stream(self.config, route, rate, headers or {})
        return ice.Routing(route, rate, max_duration, headers or {})
