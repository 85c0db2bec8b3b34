"""A local stand-in for Sinch's Callouts endpoint (`POST /calling/v1/callouts`): Sinch's cloud cannot run
here. It checks what Sinch documents: the application signature (the same scheme as callbacks, proven
against Sinch's test vector in tests/test_signing.py), the timestamp, and the request body's shape for
customCallout and conferenceCallout. It cannot prove that Sinch accepts connectStream in a customCallout's
ICE or joins a stream leg to a conference through connectConf in its ACE: that is not documented anywhere.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from datetime import UTC, datetime
from typing import Any, Self

from aiohttp import web

from gateway.core import signing


class StandIn:
    """An aiohttp server on loopback, in a thread of its own, for the routes a subclass adds."""

    def __init__(self) -> None:
        self._ready = threading.Event()

    def start(self) -> Self:
        threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True).start()
        self._ready.wait(10)
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_routes(self, router: web.UrlDispatcher) -> None:
        raise NotImplementedError

    async def _serve(self) -> None:
        app = web.Application()
        self.add_routes(app.router)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)  # bound and kept: the kernel's port is the stand-in's
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        await asyncio.Event().wait()


class CalloutsStandIn(StandIn):
    def __init__(self, key: str, secret: str) -> None:
        super().__init__()
        self.key = key
        self.secret = secret
        self.requests: list[dict[str, Any]] = []

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/calling/v1/callouts", self._callouts)

    async def _callouts(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            signing.verify(request.headers.get("Authorization"),
                           [signing.Signer(signing.APPLICATION, self.key, self.secret)], "POST", body,
                           request.headers.get("Content-Type", ""), request.headers.get("x-timestamp"),
                           request.path, datetime.now(UTC), 600)
        except signing.SignatureError as exc:
            return web.json_response({"errorCode": 40100, "message": str(exc)}, status=401)
        try:
            payload = json.loads(body)
            check_callout(payload)
        except (ValueError, KeyError, TypeError, AssertionError) as exc:
            return web.json_response({"errorCode": 40001, "message": f"invalid callout: {exc!r}"}, status=400)
        self.requests.append(payload)
        return web.json_response({"callId": str(uuid.uuid4())})


def check_callout(payload: dict[str, Any]) -> None:
    method = payload["method"]
    callout = payload[method]
    if method == "customCallout":
        svaml = json.loads(callout["ice"])  # a JSON-escaped SVAML string
        assert set(svaml) <= {"instructions", "action"}, "SVAML has instructions and one action"
        action = svaml["action"]
        assert action["name"] == "connectStream"
        assert action["destination"]["type"] == "Websocket"
        assert action["destination"]["endpoint"].startswith(("ws://", "wss://"))
        assert action["streamingOptions"]["sampleRate"] in (8000, 16000, 24000, 44100, 48000, 96000)
        assert action.get("maxDuration", 0) <= 14400
        if "ace" in callout:
            assert json.loads(callout["ace"])["action"]["name"] in ("continue", "hangup", "connectConf", "runMenu")
    elif method == "conferenceCallout":
        assert callout["destination"]["type"] in ("number", "username", "sip")
        assert callout["destination"]["endpoint"]
        assert callout["conferenceId"]
    else:
        raise ValueError(f"unknown method {method}")
