"""One worker process: a uvloop loop, a picows server, the calls it carries, and their shared tick.

The listener factory is the router: it maps `/stream/{route}?rate=HZ` to a route and refuses the upgrade with
an HTTP status otherwise (404 unknown route, 400 bad query, 503 no RTP port or shutting down).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from urllib.parse import parse_qs, urlsplit

from picows import WSUpgradeRequest, WSUpgradeResponse, WSUpgradeResponseWithListener, ws_create_server

from gateway.config import EMBEDDED_ECHO_ROUTE, SINCH_RATES, Config, Route
from gateway.echo import EchoService
from gateway.logs import log_event
from gateway.media import CallAdapter
from gateway.ports import NoPortAvailable, bind_udp_pair
from gateway.session import CloseCode

log = logging.getLogger("gateway.worker")

STREAM_PREFIX = "/stream/"
HANDSHAKE_TIMEOUT = 5.0


class Worker:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.routes: dict[str, Route] = dict(config.routes)
        self.calls: set[CallAdapter] = set()
        self.accepting = True
        self.loop: asyncio.AbstractEventLoop
        self.unix_offset = 0.0
        self._echo: EchoService | None = None
        self._stopped: asyncio.Event

    async def run(self, sock: socket.socket | None = None) -> None:
        """Serve until SIGTERM/SIGINT; `sock` is an already bound listener (the prefork supervisor's)."""
        self.loop = asyncio.get_running_loop()
        self.unix_offset = time.time() - self.loop.time()
        self._stopped = asyncio.Event()
        if not self.routes:
            self._echo = EchoService()
            port = await self._echo.start()
            self.routes[EMBEDDED_ECHO_ROUTE] = Route(name=EMBEDDED_ECHO_ROUTE, host="127.0.0.1", port=port)
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(signum, self._stopped.set)
        host, port = self.config.listen_address
        listen = {"sock": sock} if sock else {"host": host or None, "port": port, "reuse_address": True}
        server = await ws_create_server(
            self.route_request, **listen, max_frame_size=self.config.max_frame_bytes,
            websocket_handshake_timeout=HANDSHAKE_TIMEOUT,
        )
        bound = server.sockets[0].getsockname()
        log_event(log, logging.INFO, "worker.listening", address=f"{bound[0]}:{bound[1]}",
                  routes={name: route.url() for name, route in self.routes.items()})
        self._schedule_tick(self.loop.time())
        await self._stopped.wait()
        self.accepting = False
        server.close()
        now = self.loop.time()
        for call in tuple(self.calls):
            call.session.shutdown(CloseCode.GOING_AWAY, "gateway shutting down", now)
        if self._echo:
            self._echo.close()
        log_event(log, logging.INFO, "worker.stopped")

    def route_request(self, request: WSUpgradeRequest) -> CallAdapter | WSUpgradeResponseWithListener:
        url = urlsplit(request.path.decode("latin-1"))
        if url.path == "/healthz":
            return WSUpgradeResponseWithListener(WSUpgradeResponse.create_ok_response(b"ok\n"), None)
        if not url.path.startswith(STREAM_PREFIX):
            return _decline(404, "not found")
        route = self.routes.get(url.path[len(STREAM_PREFIX):])
        if route is None:
            return _decline(404, "unknown route")
        if not self.accepting:
            return _decline(503, "shutting down")
        try:
            url_rate = _rate_from_query(url.query)
        except ValueError as exc:
            return _decline(400, str(exc))
        family = socket.AF_INET6 if ":" in self.config.rtp_host else socket.AF_INET
        try:
            rtp, rtcp = bind_udp_pair(family, self.config.rtp_host, self.config.rtp_port_range,
                                      self.config.udp_rcvbuf_bytes)
        except NoPortAvailable:
            log_event(log, logging.WARNING, "upgrade.declined", reason="no_rtp_port")
            return _decline(503, "no RTP port available")
        return CallAdapter(self, route, url_rate, rtp, rtcp)

    def call_started(self, call: CallAdapter) -> None:
        self.calls.add(call)

    def call_ended(self, call: CallAdapter) -> None:
        self.calls.discard(call)

    def _schedule_tick(self, at: float) -> None:
        self.loop.call_at(at, self._tick, at)

    def _tick(self, scheduled: float) -> None:
        """One timer for all calls instead of one per call: deadlines, heartbeats and pacing."""
        now = self.loop.time()
        for call in tuple(self.calls):
            call.tick(now)
        interval = self.config.tick_interval
        self._schedule_tick(max(scheduled + interval, now))


def _rate_from_query(query: str) -> int | None:
    params = parse_qs(query, keep_blank_values=True)
    if "rate" not in params:
        return None
    value = params["rate"][-1]
    if not value.isdigit() or int(value) not in SINCH_RATES:
        raise ValueError(f"rate must be one of {', '.join(map(str, SINCH_RATES))}")
    return int(value)


def _decline(status: int, reason: str) -> WSUpgradeResponseWithListener:
    log_event(log, logging.DEBUG, "upgrade.declined", status=status, reason=reason)
    response = WSUpgradeResponse.create_error_response(status, reason.encode() + b"\n")
    return WSUpgradeResponseWithListener(response, None)
