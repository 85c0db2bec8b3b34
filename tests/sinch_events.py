"""Callback events as Sinch POSTs them to the gateway (protocol notes §1), built in one place."""

from __future__ import annotations

from typing import Any


def ice_event(call_id: str = "c-1", **fields: Any) -> dict[str, Any]:
    """An ICE (Incoming Call Event) with what every one carries: its call id, the caller (`cli`) and the number
    called (`to`). `fields` add to it or replace any of them (callHeaders, custom, ...)."""
    return {"event": "ice", "callid": call_id, "cli": "46700000001", "to": {"type": "number", "endpoint": "4681"},
            **fields}


def incoming_event(call_id: str = "in-1", session_id: str = "session-1", service_id: str = "service-1",
                   called: str = "+46812345678", caller: str = "+46700000001", **call: Any) -> dict[str, Any]:
    """Voice API 2.0's call.incoming, with every field Sinch's SDK requires of a call (sinch 2.3's Call model):
    a phone call from `caller` to `called`. `call` adds to or replaces fields of `call` (a SIP `to`, ...)."""
    return {"event": "call.incoming", "call": {
        "callId": call_id, "projectId": "project-1", "serviceId": service_id, "sessionId": session_id,
        "startTime": "2026-01-01T12:00:00Z", "callType": "PHONE", "callResult": "IN_PROGRESS",
        "originationType": "PHONE", "direction": "INBOUND", "callRate": {"currencyCode": "EUR", "amount": "0.0100"},
        "callResourceUrl": f"https://voice.api.sinch.com/v2/projects/project-1/calls/{call_id}",
        "from": {"type": "PHONE", "phone": {"number": caller}}, "to": {"type": "PHONE", "phone": {"number": called}},
        **call}}
