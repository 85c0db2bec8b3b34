"""Bounds what slow, idle and crowding HTTP clients can hold on the callback port (`callback_listen`).

aiohttp bounds neither the time a client takes to send a request's headers and body nor the number of open
connections, and its keep-alive timer (3630 s by default in 3.14) closes idle connections without a trace. This
thin layer sits between asyncio and aiohttp's protocol, as the websocket port has picows's handshake timeout:

- A connection waiting for a request (new, or after an answer) may stay idle `callback_keepalive_timeout`.
- A request must arrive whole, headers and body, within REQUEST_TIMEOUT of its first byte (slowloris). Bytes
  that came before an answer (a request pipelined behind another) start no clock: the connection waits as
  after any answer, and its next byte starts the request's.
- At `callback_max_connections`, the connection that has waited longest for a request is closed to make room
  (as nginx reuses keep-alive connections): a flood pushes out its own older connections before a caller's
  request in flight. With every connection busy in a handler, the new one is refused.

Each close is counted in gateway_callback_connections_dropped_total{reason} and logged.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import cast

from aiohttp import web

from gateway.shared import metrics
from gateway.shared.logs import log_event

log = logging.getLogger("gateway.callbacks")

REQUEST_TIMEOUT = 5.0  # seconds from a request's first byte to its last; TLS handshakes get as long


class Waiting(enum.Enum):
    FOR_REQUEST = "idle_timeout"  # the reason a connection is closed when its deadline passes in this state
    FOR_REST_OF_REQUEST = "request_timeout"


class ConnectionGuard:
    def __init__(self, keepalive_timeout: float, max_connections: int) -> None:
        self.keepalive_timeout = keepalive_timeout
        self.max_connections = max_connections
        self._open: dict[asyncio.BaseTransport, GuardedConnection] = {}
        self._waiting: dict[GuardedConnection, None] = {}  # not in a handler, longest waiting first

    async def serve(self, server: web.Server, sock: socket.socket,
                    ssl_context: ssl.SSLContext | None) -> asyncio.AbstractServer:
        """aiohttp's low-level server (AppRunner.server) on `sock`, behind the guard."""
        handshake = {"ssl": ssl_context, "ssl_handshake_timeout": REQUEST_TIMEOUT} if ssl_context else {}
        return await asyncio.get_running_loop().create_server(lambda: GuardedConnection(self, server), sock=sock,
                                                              **handshake)

    @property
    def backstop_keepalive_timeout(self) -> float:
        """For aiohttp's own keep-alive timer, which must never close a connection before the guard does."""
        return 2 * (self.keepalive_timeout + REQUEST_TIMEOUT)

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """Reads the body while the request deadline runs, then lets the handler work without one."""
        connection = self._open.get(request.transport)
        try:
            await request.read()
            if connection:
                connection.handling()
            return await handler(request)
        finally:
            if connection:
                connection.answered()

    def admit(self, connection: GuardedConnection) -> bool:
        if len(self._open) >= self.max_connections:
            oldest = next(iter(self._waiting), None)
            if oldest is None:
                connection.drop("connection_limit")
                return False
            oldest.drop("connection_limit")
        self._open[connection.transport] = connection
        self._waiting[connection] = None
        metrics.CALLBACK_CONNECTIONS.set(len(self._open))
        return True

    def waits(self, connection: GuardedConnection) -> None:
        self._waiting[connection] = None  # out of its handler: the newest waiter

    def busy(self, connection: GuardedConnection) -> None:
        self._waiting.pop(connection, None)

    def forget(self, connection: GuardedConnection) -> None:
        self._waiting.pop(connection, None)
        if self._open.pop(connection.transport, None) is not None:
            metrics.CALLBACK_CONNECTIONS.set(len(self._open))


class GuardedConnection(asyncio.Protocol):
    """Stands in front of one aiohttp RequestHandler: forwards every event, keeps the connection's deadline."""

    def __init__(self, guard: ConnectionGuard, server: web.Server) -> None:
        self.guard = guard
        self.server = server
        self.inner: asyncio.Protocol | None = None  # made once the connection is admitted
        self.transport: asyncio.Transport | None = None
        self.waiting: Waiting | None = None  # None while a handler works on a request
        self.requests = 0
        self.opened = 0.0
        self._deadline: asyncio.TimerHandle | None = None

    # ---- asyncio.Protocol -------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.opened = asyncio.get_running_loop().time()
        if not self.guard.admit(self):
            return
        self._wait(Waiting.FOR_REQUEST, self.guard.keepalive_timeout)
        self.inner = self.server()
        self.inner.connection_made(self.transport)

    def data_received(self, data: bytes) -> None:
        if self.waiting is Waiting.FOR_REQUEST:
            self._wait(Waiting.FOR_REST_OF_REQUEST, REQUEST_TIMEOUT)
        if self.inner:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner else None

    def pause_writing(self) -> None:
        if self.inner:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        self.guard.forget(self)
        if self.inner:
            self.inner.connection_lost(exc)

    # ---- the request cycle, from the middleware ---------------------------------------------------------

    def handling(self) -> None:
        """The request is read whole: the handler's time is the gateway's own, not the client's."""
        self.requests += 1
        self.waiting = None
        self._cancel_deadline()
        self.guard.busy(self)

    def answered(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.guard.waits(self)
        self._wait(Waiting.FOR_REQUEST, self.guard.keepalive_timeout)

    def drop(self, reason: str) -> None:
        """Close at once (RST: nothing is owed to a client past its deadline), counted and logged. A keep-alive
        connection idle after its requests is routine; any other drop is a client to look at."""
        assert self.transport is not None
        self._cancel_deadline()
        self.guard.forget(self)
        metrics.CALLBACK_CONNECTIONS_DROPPED.labels(reason).inc()
        routine = reason == Waiting.FOR_REQUEST.value and self.requests > 0
        log_event(log, logging.INFO if routine else logging.WARNING, "callback.connection_dropped", reason=reason,
                  peer=_peer(self.transport), requests=self.requests,
                  seconds=round(asyncio.get_running_loop().time() - self.opened, 3))
        self.transport.abort()

    # ---- the deadline ------------------------------------------------------------------------------------

    def _wait(self, waiting: Waiting, seconds: float) -> None:
        self._cancel_deadline()
        self.waiting = waiting
        self._deadline = asyncio.get_running_loop().call_later(seconds, self.drop, waiting.value)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else ""
