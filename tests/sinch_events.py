"""Callback events as Sinch POSTs them to the gateway (protocol notes §1), built in one place."""

from __future__ import annotations

from typing import Any


def ice_event(call_id: str = "c-1", **fields: Any) -> dict[str, Any]:
    """An ICE (Incoming Call Event) with what every one carries: its call id, the caller (`cli`) and the number
    called (`to`). `fields` add to it or replace any of them (callHeaders, custom, ...)."""
    return {"event": "ice", "callid": call_id, "cli": "46700000001", "to": {"type": "number", "endpoint": "4681"},
            **fields}
