"""The allocation webhook (allocate_url, issue 15.4): for media platforms that place calls themselves, the
gateway asks, once per call, where its RTP goes.

    POST {allocate_url}  {"call_id": ..., "route": ..., "headers": {...}}  ->  200 {"target": "HOST:PORT"}

Asked from the worker's loop when the call is answered, while its RTP waits (held like call_started_wait's), and
bounded by allocate_timeout, a DNS name in the answer resolved within it too. A timeout, an error or an answer
that is no HOST:PORT is counted and logged, and the call goes to the route's own targets: a slow or failing
webhook costs its call a late start, never the call, and never another call's data path. A call that ends
before the answer withdraws its question (counted and logged as abandoned).
"""

from __future__ import annotations

import asyncio
import logging
import socket

import aiohttp
import msgspec

from gateway.core.pool import PoolTarget
from gateway.shared import metrics
from gateway.shared.config import parse_target
from gateway.shared.host_limits import ALLOCATION_CONNECTIONS
from gateway.shared.logs import log_event
from gateway.shared.resolve import address_of

log = logging.getLogger("gateway.allocation")


class Allocation(msgspec.Struct):
    target: str


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Allocation).decode


class BadAnswer(ValueError):
    pass


class Allocator:
    def __init__(self, url: str, timeout: float, family: socket.AddressFamily) -> None:
        self.url = url
        self._timeout = timeout
        self._family = family
        self._session: aiohttp.ClientSession | None = None

    def allocate(self, call_id: str, route: str, headers: dict[str, str]) -> asyncio.Task[PoolTarget | None]:
        """Ask for the call's target; the task's result is it, or None: the route's own targets."""
        return asyncio.get_running_loop().create_task(self._allocate(call_id, route, headers))

    async def _allocate(self, call_id: str, route: str, headers: dict[str, str]) -> PoolTarget | None:
        try:
            async with asyncio.timeout(self._timeout):
                target = await self._ask(call_id, route, headers)
        except TimeoutError:
            return _fell_back(call_id, route, "timeout", f"no answer within {self._timeout} s")
        except BadAnswer as exc:
            return _fell_back(call_id, route, "bad_answer", str(exc))
        except (aiohttp.ClientError, OSError) as exc:
            return _fell_back(call_id, route, "error", str(exc) or type(exc).__name__)
        except asyncio.CancelledError:  # the call ended first (CallAdapter._release): its target no longer matters
            metrics.ALLOCATIONS.labels(route, "abandoned").inc()
            log_event(log, logging.INFO, "call.allocation_abandoned", call_id=call_id, route=route,
                      reason="the call ended before the webhook answered")
            raise
        metrics.ALLOCATIONS.labels(route, "allocated").inc()
        log_event(log, logging.INFO, "call.allocated", call_id=call_id, route=route, target=target.name)
        return target

    async def _ask(self, call_id: str, route: str, headers: dict[str, str]) -> PoolTarget:
        if self._session is None:
            # Its connections are descriptors the worker sets aside beside its calls' (host_limits.worker_reserve).
            connector = aiohttp.TCPConnector(limit=ALLOCATION_CONNECTIONS)
            self._session = aiohttp.ClientSession(connector=connector)
        body = _encode({"call_id": call_id, "route": route, "headers": headers})
        async with self._session.post(self.url, data=body, headers={"Content-Type": "application/json"}) as response:
            response.raise_for_status()
            answer = await response.read()
        try:
            written = parse_target(_decode(answer).target)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            raise BadAnswer(f"expected {{\"target\": \"HOST:PORT\"}}: {exc}") from None
        try:  # in the loop's executor: never on the data path
            infos = await asyncio.get_running_loop().getaddrinfo(written.host, written.port, family=self._family,
                                                                 type=socket.SOCK_DGRAM)
        except OSError as exc:
            raise BadAnswer(f"{written.host} does not resolve: {exc}") from None  # or not to rtp_host's family
        return PoolTarget(str(written), address_of(infos, written.port))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _fell_back(call_id: str, route: str, reason: str, detail: str) -> None:
    metrics.ALLOCATIONS.labels(route, reason).inc()
    log_event(log, logging.WARNING, "call.allocation_failed", call_id=call_id, route=route, reason=reason,
              error=detail)
    return None
