"""Optional JSON call events for media services: where RTP carries no signalling, this tells a media service
which call a stream is, with the Sinch callHeaders it cannot learn otherwise.

    POST {call_events_url}  {"event": "call.started", "call_id": ..., "route": ..., "gateway_rtp_port": ...,
                             "ssrc": ..., "payload_type": ..., "codec": ..., "wire_rate": ..., ...}
    POST {call_events_url}  {"event": "call.ended", "call_id": ..., "close_code": ..., "reason": ..., ...}

Fire and forget from the worker's loop, bounded: a slow or failing receiver costs a counted drop and a log line,
never a call.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import msgspec

from gateway.shared import metrics
from gateway.shared.host_limits import CALL_EVENT_CONNECTIONS
from gateway.shared.logs import log_event

log = logging.getLogger("gateway.call_events")

MAX_IN_FLIGHT = 256
_encode = msgspec.json.Encoder().encode


class CallEvents:
    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    def post(self, event: dict[str, Any]) -> asyncio.Task[None] | None:
        """Send `event`; the task that does, done once the receiver answered or the post failed (None: dropped,
        too many in flight)."""
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            metrics.CALL_EVENTS.labels("dropped").inc()
            log_event(log, logging.WARNING, "call_event.dropped", call_id=event.get("call_id"), kind=event["event"])
            return None
        task = asyncio.get_running_loop().create_task(self._send(event))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        return task

    async def _send(self, event: dict[str, Any]) -> None:
        if self._session is None:
            # Its connections are descriptors the worker sets aside beside its calls' (host_limits.worker_reserve).
            connector = aiohttp.TCPConnector(limit=CALL_EVENT_CONNECTIONS)
            self._session = aiohttp.ClientSession(timeout=self._timeout, connector=connector)
        try:
            async with self._session.post(self.url, data=_encode(event),
                                          headers={"Content-Type": "application/json"}) as response:
                response.raise_for_status()
        except (aiohttp.ClientError, TimeoutError) as exc:
            metrics.CALL_EVENTS.labels("failed").inc()
            log_event(log, logging.WARNING, "call_event.failed", call_id=event.get("call_id"), kind=event["event"],
                      error=str(exc) or type(exc).__name__)
            return
        metrics.CALL_EVENTS.labels("sent").inc()
        log_event(log, logging.DEBUG, "call_event.sent", call_id=event.get("call_id"), kind=event["event"])

    async def close(self) -> None:
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=self._timeout.total)
        if self._session is not None:
            await self._session.close()
