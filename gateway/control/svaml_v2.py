"""SVAML v2 commands for a stream leg to this gateway (Voice API 2.0), built in one place for the answer to
call.incoming (gateway.control.incoming) and for outbound calls (gateway.control.calls_v2). Sans-IO: dicts out.

A stream is a call leg of its own, created by `dial` to a STREAM destination; legs hear each other once both
join the same bridge (`bridgeCall`); a leg's `events` say what happens when it answers, ends or fails
(voice-2.0 svaml/dial, sinch-sdk-python's svaml models).
"""

from __future__ import annotations

from typing import Any

from gateway.control import ice
from gateway.shared.config import Config

STREAM_PROTOCOL_VERSION = 1  # the AsyncAPI "Voice Stream 1.0.0": the websocket protocol v1 and v2 share
# Names of the legs and of the bridge within one session (callName: 1-32 characters, no whitespace).
CALLER = "caller"
STREAM = "stream"
PHONE = "phone"
BRIDGE = "gateway"
# Whatever ends a leg without an answer, besides a hangup after it.
LEG_ENDS = ("onBusy", "onReject", "onTimeout", "onFailure", "onHangup")


def answer() -> dict[str, Any]:
    return {"command": "answer"}


def bridge(name: str = BRIDGE) -> dict[str, Any]:
    return {"command": "bridgeCall", "bridgeName": name}


def hangup(call_name: str = "") -> dict[str, Any]:
    """Hang up the leg named `call_name`; "" = the leg the command runs on."""
    return {"command": "hangup", "callName": call_name} if call_name else {"command": "hangup"}


def dial_stream(config: Config, routing: ice.Routing, expires: int, session: str = "", partner: str = "",
                bridge_name: str = BRIDGE) -> dict[str, Any]:
    """`dial` a stream leg to this gateway (`{public_url}/stream/{route}` with its token) that joins
    `bridge_name` once answered; with a `partner` leg, that leg is hung up when the stream ends or fails, so a
    caller is never left with nobody listening."""
    route, rate, max_duration, headers = routing
    stream: dict[str, Any] = {
        "endpoint": ice.stream_endpoint(config, route, rate, expires, session=session),
        "streamOptions": {"version": STREAM_PROTOCOL_VERSION, "codec": "PCM", "sampleRate": rate},
    }
    if headers:
        stream["callHeaders"] = [{"key": key, "value": value} for key, value in headers.items()]
    events: dict[str, Any] = {"onAnswer": [bridge(bridge_name)]}
    if partner:
        events.update({key: [hangup(partner)] for key in LEG_ENDS})
    command: dict[str, Any] = {"command": "dial", "callName": STREAM, "to": {"type": "STREAM", "stream": stream}}
    if max_duration:
        command["maxCallDurationSeconds"] = max_duration
    command["events"] = events
    return command


def dial_phone(number: str, cli: str, ring_timeout: int, on_answer: list[dict[str, Any]],
               on_end: list[dict[str, Any]]) -> dict[str, Any]:
    """`dial` a phone number (E.164) from `cli`; `on_answer` runs once it answers, `on_end` when it ends."""
    command: dict[str, Any] = {"command": "dial", "callName": PHONE,
                               "to": {"type": "PHONE", "phone": {"number": number}}}
    if cli:
        command["from"] = {"type": "PHONE", "phone": {"number": cli}}
    command["dialTimeoutDurationSeconds"] = ring_timeout
    command["events"] = {"onAnswer": on_answer, "onHangup": on_end}
    return command
