"""A local stand-in for Sinch's Voice API 2.0 (Sinch's cloud cannot run here), both ways:

- As Sinch's webhooks: `post_webhook` POSTs an event to the gateway as a service's webhook does, signed with the
  service scheme, and gives up after Sinch's 5 s; `check_reply` holds the answer to the documented shape, through
  Sinch's own SDK models (sinch 2.3: VoiceSinchEventResponse) and the rules its docs give that those models leave
  out (at most 16 call headers of at most 255 printable characters, callName 1-32 characters without whitespace,
  a hangup names a leg of the session, a STREAM endpoint is ws:// or wss://); `stream_leg` then does what Sinch
  does with a dial to a STREAM: opens the websocket and sends the AsyncAPI spec's connect message.
- As its REST API: `POST /oauth2/token` (client credentials, Basic with the project's access key: Sinch's auth
  endpoint) and `POST /v2/projects/{project}/calls` (a bearer token from there or Basic, `serviceId`, an
  `Idempotency-Key` that answers a repeated request with the first answer, the body held to the same rules).

What it cannot prove: that Sinch sends exactly these events and takes exactly these replies in production (Voice
API 2.0 is a public preview); the points we could not confirm are listed in docs/protocol.md.
"""

from __future__ import annotations

import json
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

from aiohttp import web
from sinch.domains.voice.models.v2.calls.internal.request.start_call_request import StartCallRequest
from sinch.domains.voice.models.v2.sinch_events.voice_sinch_event_response import VoiceSinchEventResponse

from gateway.control.oauth import basic
from gateway.core import signing
from gateway.shared.config import MAX_CALL_HEADERS, SINCH_RATES, call_header_problem
from tests.sinch_api_standin import StandIn
from tests.sinch_client import SinchCall

REPLY_DEADLINE = 5.0  # seconds Sinch waits for the answer to a webhook, then tries the fallback URL
CALL_NAME = re.compile(r"\S{1,32}")
EVENTS = ("onAnswer", "onBusy", "onReject", "onTimeout", "onHangup", "onFailure")
COMMAND_FIELDS = {
    "answer": {"command"},
    "hangup": {"command", "callName"},
    "bridgeCall": {"command", "bridgeName"},
    "dial": {"command", "callName", "from", "to", "dialTimeoutDurationSeconds", "maxCallDurationSeconds", "events"},
}


def post_webhook(url: str, event: dict[str, Any], signer: signing.Signer | None,
                 stamp: str | None = None) -> tuple[int, bytes]:
    """POST `event` as Sinch's webhook does (signed by `signer`; None: unsigned); the status and body."""
    body = json.dumps(event).encode()
    stamp = stamp or signing.utc_timestamp()
    headers = {"Content-Type": "application/json", "x-timestamp": stamp, "ce-id": str(uuid.uuid4()),
               "ce-source": f"projects/project-1/services/{signer.key if signer else 'none'}"}
    if signer is not None:
        headers["Authorization"] = signing.authorization(signer, "POST", body, "application/json", stamp,
                                                         urllib.parse.urlsplit(url).path)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=REPLY_DEADLINE) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def check_reply(reply: dict[str, Any]) -> None:
    """The answer to call.incoming as Sinch documents it; AssertionError (or pydantic's) naming what is not."""
    VoiceSinchEventResponse.model_validate(reply)
    assert set(reply) <= {"callName", "commands", "events"}, f"unknown fields {set(reply)}"
    names = {reply["callName"]} if "callName" in reply else set()
    assert not names or CALL_NAME.fullmatch(reply["callName"])
    events = reply.get("events", {})
    assert set(events) <= {"onHangup"}, "an incoming call's reply takes onHangup only"
    check_commands(reply["commands"] + events.get("onHangup", []), names)


def check_commands(commands: list[dict[str, Any]], names: set[str] | None = None) -> None:
    """SVAML v2 commands (those the gateway sends), nested ones included; a hangup names a leg that exists."""
    assert commands, "at least one command"
    names = set() if names is None else names
    for command in walk(commands):
        if command["command"] == "dial":
            assert CALL_NAME.fullmatch(command["callName"]), command["callName"]
            names.add(command["callName"])
    for command in walk(commands):
        kind = command["command"]
        assert set(command) <= COMMAND_FIELDS[kind], f"{kind}: unknown fields {set(command) - COMMAND_FIELDS[kind]}"
        if kind == "hangup" and "callName" in command:
            assert command["callName"] in names, f"hangup of {command['callName']!r}, a leg never named"
        if kind == "bridgeCall":
            assert command["bridgeName"]
        if kind == "dial":
            _check_dial(command)


def _check_dial(dial: dict[str, Any]) -> None:
    assert set(dial.get("events", {})) <= set(EVENTS)
    to = dial["to"]
    if to["type"] == "PHONE":
        assert re.fullmatch(r"\+[1-9]\d{1,14}", to["phone"]["number"])
        return
    assert to["type"] == "STREAM", to
    stream = to["stream"]
    assert set(stream) <= {"endpoint", "streamOptions", "callHeaders"}
    assert stream["endpoint"].startswith(("ws://", "wss://"))
    options = stream["streamOptions"]
    assert (options["version"], options["codec"]) == (1, "PCM") and options["sampleRate"] in SINCH_RATES
    headers = stream.get("callHeaders", [])
    assert len(headers) <= MAX_CALL_HEADERS
    for header in headers:
        assert set(header) <= {"key", "value"} and not call_header_problem(header["key"], header.get("value", ""))


def walk(commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every command, and every command in a command's events, depth first."""
    found = []
    for command in commands:
        found.append(command)
        for nested in command.get("events", {}).values():
            found.extend(walk(nested))
    return found


def stream_dials(commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in walk(commands) if c["command"] == "dial" and c["to"]["type"] == "STREAM"]


async def stream_leg(dial: dict[str, Any], call_id: str, service_id: str) -> tuple[SinchCall, dict[str, Any]]:
    """What Sinch does with a dial to a STREAM: the websocket to its endpoint and the spec's connect message
    (the leg's own call id, the service, the stream's rate and callHeaders); the call and the gateway's reply."""
    stream = dial["to"]["stream"]
    call = await SinchCall.open(stream["endpoint"])
    headers = {header["key"]: header.get("value") for header in stream.get("callHeaders", [])}
    reply = await call.connect(call_id, rate=stream["streamOptions"]["sampleRate"], applicationKey=service_id,
                               callHeaders=headers)
    return call, reply


class SinchV2StandIn(StandIn):
    """Sinch's auth endpoint and Voice API 2.0's calls endpoint for one project and its access key."""

    def __init__(self, project: str, key_id: str, key_secret: str, token_lifetime: int = 3600) -> None:
        super().__init__()
        self.project = project
        self.credentials = basic(key_id, key_secret)
        self.token_lifetime = token_lifetime
        self.tokens: dict[str, bool] = {}  # access token: still valid
        self.calls: list[dict[str, Any]] = []  # accepted requests: body, serviceId, Idempotency-Key, auth scheme
        self.expired: list[str] = []  # the Idempotency-Keys of requests refused for an expired token
        self._answers: dict[str, dict[str, Any]] = {}  # by Idempotency-Key

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/oauth2/token", self._token)
        router.add_post("/v2/projects/{project}/calls", self._start_call)

    def expire_tokens(self) -> None:
        """As if every token handed out so far had expired at Sinch."""
        self.tokens = dict.fromkeys(self.tokens, False)

    async def _token(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != self.credentials:
            return web.json_response({"error": "invalid_client"}, status=401)
        if (await request.post()).get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        token = secrets.token_urlsafe(24)
        self.tokens[token] = True
        return web.json_response({"access_token": token, "expires_in": self.token_lifetime, "scope": "",
                                  "token_type": "bearer"})

    async def _start_call(self, request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme == "Bearer" and self.tokens.get(token) is False:
            self.expired.append(request.headers.get("Idempotency-Key", ""))
            return web.json_response({"error": "invalid_token"}, status=401, headers={
                "WWW-Authenticate": 'Bearer error="invalid_token", error_description="The access token expired"'})
        if not (scheme == "Bearer" and self.tokens.get(token)) and authorization != self.credentials:
            return web.json_response({"error": "unauthorized"}, status=401, headers={"WWW-Authenticate": "Bearer"})
        if request.match_info["project"] != self.project:
            return web.json_response({"error": "no such project"}, status=404)
        key = request.headers.get("Idempotency-Key", "")
        if not 16 <= len(key) <= 128:
            return web.json_response({"error": "Idempotency-Key: 16-128 characters"}, status=400)
        if key in self._answers:
            return web.json_response(self._answers[key], status=201)
        body = await request.read()
        try:
            payload = json.loads(body)
            assert set(payload) == {"commands"}, "a body of commands alone"
            StartCallRequest.model_validate(payload)  # Sinch's SDK
            check_commands(payload["commands"])
        except (ValueError, KeyError, TypeError, AssertionError) as exc:  # pydantic's errors are ValueErrors
            return web.json_response({"error": f"invalid call: {exc!r}"}, status=400)
        service = request.query.get("serviceId", "default-service")
        self.calls.append({"body": payload, "serviceId": service, "key": key, "auth": scheme})
        self._answers[key] = {"projectId": self.project, "serviceId": service, "sessionId": str(uuid.uuid4())}
        return web.json_response(self._answers[key], status=201)
