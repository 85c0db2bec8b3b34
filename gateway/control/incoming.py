"""Voice API 2.0's `call.incoming` webhook and its answer (../shared/sinch-voice-v2.md §2). Sans-IO: dicts and
`now` in, a SVAML v2 reply out; gateway.control.callbacks does the HTTP.

    {"event": "call.incoming", "call": {"callId", "sessionId", "serviceId", "from": {...}, "to": {...}, ...}}

is answered with the caller answered and put in a bridge, and a stream leg to this gateway dialled into it:

    {"callName": "caller",
     "commands": [{"command": "answer"}, {"command": "bridgeCall", "bridgeName": "gateway"}, <dial STREAM>],
     "events": {"onHangup": [{"command": "hangup", "callName": "stream"}]}}

The `ice_rules` choose route, rate, headers and maximum duration as for an ICE: `to` and `cli` are the numbers
(or SIP URIs) called and calling, a SIP call's callHeaders are the headers, and `custom` is always "".
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.control import ice, svaml_v2
from gateway.control.ice import CallbackError, Ice
from gateway.shared.config import MAX_CALL_HEADERS, Config, call_header_problem

EVENT = "call.incoming"
NO_MATCH = {"commands": [svaml_v2.hangup()]}


class Incoming(msgspec.Struct, frozen=True):
    call: Ice
    session_id: str
    service_id: str


def parse_incoming(event: dict[str, Any]) -> Incoming:
    call = event.get("call")
    if not isinstance(call, dict):
        raise CallbackError("bad_incoming", "call.incoming without a \"call\" object")
    call_id, session_id = call.get("callId"), call.get("sessionId")
    if not (isinstance(call_id, str) and call_id and isinstance(session_id, str) and session_id):
        raise CallbackError("bad_incoming", "call.incoming without call.callId and call.sessionId")
    to = call.get("to")
    return Incoming(
        call=Ice(call_id=call_id, to=_address(to), cli=_address(call.get("from")), custom="", headers=_headers(to)),
        session_id=session_id,
        service_id=ice.text(call.get("serviceId")),
    )


def _address(party: object) -> str:
    """A PHONE party's number or a SIP party's URI: {"type": "PHONE", "phone": {"number": "+4681..."}}."""
    if not isinstance(party, dict):
        return ""
    details = party.get(ice.text(party.get("type")).lower())
    if not isinstance(details, dict):
        return ""
    return ice.text(details.get("number", details.get("endpoint")))


def _headers(to: object) -> dict[str, str]:
    """A SIP call's callHeaders: [{"key": "k", "value": "v"}], the value optional, as Sinch bounds them."""
    sip = to.get("sip") if isinstance(to, dict) else None
    listed = sip.get("callHeaders") if isinstance(sip, dict) else None
    if listed is None:
        return {}
    if not isinstance(listed, list) or len(listed) > MAX_CALL_HEADERS:
        raise CallbackError("bad_incoming", f"callHeaders must be a list of at most {MAX_CALL_HEADERS} {{key, value}}")
    headers = {}
    for header in listed:
        if not isinstance(header, dict) or not isinstance(header.get("key"), str):
            raise CallbackError("bad_incoming", "callHeaders must be a list of {key, value}")
        key, value = header["key"], ice.text(header.get("value"))
        if problem := call_header_problem(key, value):
            raise CallbackError("bad_incoming", problem)
        headers[key] = value
    return headers


def answer_incoming(config: Config, incoming: Incoming, now: float) -> tuple[dict[str, Any], str]:
    """The reply to a call.incoming, and which route the rules chose ("no_match": the caller is hung up)."""
    routing = ice.route_call(config, incoming.call)
    if routing is None:
        return NO_MATCH, "no_match"
    dial = svaml_v2.dial_stream(config, routing, int(now + config.token_ttl), session=incoming.session_id,
                                partner=svaml_v2.CALLER)
    return {
        "callName": svaml_v2.CALLER,
        "commands": [svaml_v2.answer(), svaml_v2.bridge(), dial],
        "events": {"onHangup": [svaml_v2.hangup(svaml_v2.STREAM)]},
    }, routing.route
