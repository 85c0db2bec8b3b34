"""Sinch callback events and the SVAML that answers them (protocol notes §1). Sans-IO: dicts and `now` in,
SVAML out; the HTTP side lives in gateway.callbacks.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlencode

import msgspec

from gateway.core import tokens
from gateway.core.errors import InputError
from gateway.shared.config import Config, IceRule

EVENTS = ("ice", "ace", "dice", "pie", "notify")
CONTINUE = {"action": {"name": "continue"}}
HANGUP = {"action": {"name": "hangup"}}


class CallbackError(InputError):
    """A callback body the gateway cannot use; answered 400."""


class Ice(msgspec.Struct, frozen=True):
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
    if name not in EVENTS:
        raise CallbackError("unknown_event", f"unknown event {event['event']!r}")
    return name, event


def call_id_of(event: dict[str, Any]) -> str:
    value = event.get("callid", event.get("callId", ""))  # samples spell it both ways
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


def answer_ice(config: Config, ice: Ice, now: float) -> tuple[dict[str, Any], str]:
    """The SVAML for an ICE, and which rule chose it (for the log)."""
    rule = next((r for r in config.ice_rules if matches(r, ice)), None)
    if rule is None:
        if config.ice_rules and config.ice_no_match == "hangup":
            return HANGUP, "no_match"
        rule = IceRule(route=config.default_ice_route, rate=config.ice_rate)
    headers = {key: ice.headers[key] for key in rule.forward_headers if key in ice.headers}
    headers.update(rule.call_headers)
    return connect_stream(config, ice.call_id, rule.route, rule.rate, rule.max_duration, headers, now), rule.route


def stream_endpoint(config: Config, call_id: str, route: str, rate: int, now: float) -> str:
    """`{public_url}/stream/{route}?rate=..&token=..`; the token binds call id, route, rate and expiry."""
    query = {"rate": rate}
    if config.token_key:
        query["token"] = tokens.issue(config.token_key, call_id, route, rate, int(now + config.token_ttl),
                                       config.instance_id)
    return f"{config.stream_base_url}/stream/{route}?{urlencode(query)}"


def connect_stream(
    config: Config, call_id: str, route: str, rate: int, max_duration: int, headers: dict[str, str], now: float
) -> dict[str, Any]:
    """SVAML connectStream (protocol notes §1); `now` is unix time, for the token's expiry."""
    action: dict[str, Any] = {
        "name": "connectStream",
        "destination": {"type": "Websocket", "endpoint": stream_endpoint(config, call_id, route, rate, now)},
        "streamingOptions": {"version": 1, "sampleRate": rate},
    }
    if max_duration:
        action["maxDuration"] = max_duration
    if headers:
        action["callHeaders"] = [{"key": key, "value": value} for key, value in headers.items()]
    return {"instructions": [], "action": action}
