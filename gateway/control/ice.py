"""Sinch callback events and the SVAML that answers them (protocol notes §1). Sans-IO: dicts and `now` in,
SVAML out; the HTTP side lives in gateway.callbacks. The `ice_rules` route Voice API 1's ICE here and Voice API
2.0's call.incoming (gateway.control.incoming) alike.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any, NamedTuple
from urllib.parse import urlencode

import msgspec

from gateway.core import tokens
from gateway.core.errors import InputError
from gateway.shared.config import Config, IceRule

EVENTS = ("ice", "ace", "dice", "pie", "notify")
V2_EVENT_PREFIX = "call."  # Voice API 2.0 names every call event call.<what> (call.incoming, call.hangup, ...)
CONTINUE = {"action": {"name": "continue"}}
HANGUP = {"action": {"name": "hangup"}}


class CallbackError(InputError):
    """A callback body the gateway cannot use; answered 400."""


class Ice(msgspec.Struct, frozen=True):
    """An incoming call as the ice_rules see it: an ICE, or a call.incoming (whose `custom` is always "")."""

    call_id: str
    to: str
    cli: str
    custom: str
    headers: dict[str, str]


_decode_json = msgspec.json.Decoder().decode


def parse_event(body: bytes) -> tuple[str, dict[str, Any]]:
    try:
        event = _decode_json(body)
    except msgspec.DecodeError as exc:
        raise CallbackError("malformed_json", f"not JSON: {exc}") from None
    except RecursionError:  # msgspec's decoder stops at Python's recursion limit: no callback nests that deep
        raise CallbackError("malformed_json", "not JSON: nested too deeply") from None
    if not isinstance(event, dict) or not isinstance(event.get("event"), str):
        raise CallbackError("missing_event", "a callback is a JSON object with an \"event\" field")
    name = event["event"].lower()
    if name not in EVENTS and not name.startswith(V2_EVENT_PREFIX):
        raise CallbackError("unknown_event", f"unknown event {event['event']!r}")
    return name, event


def call_id_of(event: dict[str, Any]) -> str:
    """The call id of a Voice API 1 event (samples spell it both ways), or of a 2.0 event's `call`."""
    where = event["call"] if isinstance(event.get("call"), dict) else event
    value = where.get("callid", where.get("callId", ""))
    return value if isinstance(value, str) else ""


def text(value: object) -> str:
    """A field Sinch sends as a scalar, as text: "" when absent or a list or object (never the str() of a
    structure a peer may nest as deep as the decoder goes)."""
    if value is None or isinstance(value, list | dict):
        return ""
    return value if isinstance(value, str) else str(value)


def parse_ice(event: dict[str, Any]) -> Ice:
    call_id = call_id_of(event)
    if not call_id:
        raise CallbackError("bad_ice", "ICE without callid")
    to = event.get("to") or {}
    headers = event.get("callHeaders") or []
    try:
        return Ice(
            call_id=call_id,
            to=text(to.get("endpoint")) if isinstance(to, dict) else "",
            cli=text(event.get("cli")),
            custom=text(event.get("custom")),
            headers={text(h["key"]): text(h.get("value")) for h in headers},
        )
    except (TypeError, KeyError, AttributeError):
        raise CallbackError("bad_ice", "callHeaders must be a list of {key, value}") from None


def matches(rule: IceRule, ice: Ice) -> bool:
    match = rule.match
    return (
        fnmatchcase(ice.to, match.to)
        and fnmatchcase(ice.cli, match.cli)
        and fnmatchcase(ice.custom, match.custom)
        and all(fnmatchcase(ice.headers.get(key, ""), pattern) for key, pattern in match.headers.items())
    )


class Routing(NamedTuple):
    """Where the ice_rules send a call, and with what."""

    route: str
    rate: int
    max_duration: int  # seconds; 0 = Sinch's own limit
    headers: dict[str, str]  # callHeaders for the stream's connect message


def route_call(config: Config, ice: Ice) -> Routing | None:
    """The first matching rule's routing (`ice_route` at `ice_rate` without rules); None: hang up."""
    rule = next((r for r in config.ice_rules if matches(r, ice)), None)
    if rule is None:
        if config.ice_rules and config.ice_no_match == "hangup":
            return None
        rule = IceRule(route=config.default_ice_route, rate=config.ice_rate)
    headers = {key: ice.headers[key] for key in rule.forward_headers if key in ice.headers}
    headers.update(rule.call_headers)
    return Routing(rule.route, rule.rate, rule.max_duration, headers)


def answer_ice(config: Config, ice: Ice, now: float) -> tuple[dict[str, Any], str]:
    """The SVAML for an ICE, and which rule chose it (for the log)."""
    routing = route_call(config, ice)
    if routing is None:
        return HANGUP, "no_match"
    route, rate, max_duration, headers = routing
    return connect_stream(config, ice.call_id, route, rate, max_duration, headers, now), route


def stream_endpoint(config: Config, route: str, rate: int, expires: int, call_id: str = "", session: str = "") -> str:
    """`{public_url}/stream/{route}?rate=..&token=..`; the token binds route, rate and expiry (unix seconds), and
    the call id (Voice API 1's ICE) or the session (2.0's call.incoming) when there is one."""
    query = {"rate": rate}
    if config.token_key:
        query["token"] = tokens.issue(config.token_key, call_id, route, rate, expires, session=session,
                                      instance=config.instance_id)
    return f"{config.stream_base_url}/stream/{route}?{urlencode(query)}"


def connect_stream(
    config: Config, call_id: str, route: str, rate: int, max_duration: int, headers: dict[str, str], now: float
) -> dict[str, Any]:
    """SVAML connectStream (protocol notes §1); `now` is unix time, for the token's expiry."""
    action: dict[str, Any] = {
        "name": "connectStream",
        "destination": {"type": "Websocket",
                        "endpoint": stream_endpoint(config, route, rate, int(now + config.token_ttl), call_id)},
        "streamingOptions": {"version": 1, "sampleRate": rate},
    }
    if max_duration:
        action["maxDuration"] = max_duration
    if headers:
        action["callHeaders"] = [{"key": key, "value": value} for key, value in headers.items()]
    return {"instructions": [], "action": action}
