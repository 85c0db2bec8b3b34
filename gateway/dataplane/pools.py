"""A worker's media service pools: the targets of each route, which one a new call goes to, their health, and
failover. A target is marked down when a call's connected socket reports ICMP port unreachable (ECONNREFUSED,
RFC 1122 §4.1.3.3), or when a route has rtp_timeout and a call sending it RTP has had none back for that long.
Its calls then move to another target of the route (CallAdapter.fail_over); while it is down new calls skip it,
and every target_probe_interval a probe (an empty RTCP receiver report, RFC 3550 §6.4.2, to its RTCP port) asks
whether it listens again: no ICMP port unreachable within PROBE_WAIT marks it up.

Each worker keeps its own view. Nothing here runs per frame: the ECONNREFUSED that starts a failover is the
send or receive error the data path already handles, and the rest runs on this module's own timer.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING

from gateway.core.pool import PoolTarget, TargetPool
from gateway.core.rtp import build_empty_receiver_report
from gateway.core.session import CallState
from gateway.shared import metrics
from gateway.shared.config import Config, Route, is_ip_address
from gateway.shared.logs import log_event
from gateway.shared.resolve import address_of, resolve, rtp_family

if TYPE_CHECKING:
    from gateway.dataplane.media import CallAdapter

log = logging.getLogger("gateway.pools")

HEALTH_INTERVAL = 0.1  # seconds between rtp_timeout checks (and probe and resolve deadlines)
PROBE_WAIT = 0.2  # an ICMP port unreachable answers within this on any network a media service is on
PROBE_PACKET = build_empty_receiver_report(0)


class MediaPools:
    def __init__(self, config: Config) -> None:
        self._config = config
        self._family = rtp_family(config)
        self.pools: dict[str, TargetPool] = {}
        self.forks: dict[str, tuple[PoolTarget, ...]] = {}  # by route: where copies of its calls' RTP go
        self._routes: dict[str, Route] = {}
        self._silence: dict[CallAdapter, tuple[int, int, float]] = {}  # RTP in seen, RTP out then, since
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_probe = self._next_resolve = 0.0
        for route in config.routes.values():
            self.add(route)

    def add(self, route: Route) -> None:
        """A route's targets, resolved now (a worker's start: the supervisor checked that they resolve)."""
        targets = [PoolTarget(str(target), resolve(target, self._family)) for target in route.targets]
        self.pools[route.name] = TargetPool(route.policy, targets)
        self.forks[route.name] = tuple(PoolTarget(str(fork), resolve(fork, self._family)) for fork in route.forks)
        self._routes[route.name] = route
        for target in targets:
            metrics.create_target_series(route.name, target.name)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._next_resolve = loop.time() + self._config.route_resolve_interval
        self._tick()

    # ---- calls -------------------------------------------------------------------------------------------

    def pick(self, route: str) -> PoolTarget:
        return self.pools[route].pick()

    def call_started(self, call: CallAdapter) -> None:
        call.target.calls.add(call)
        metrics.TARGET_CALLS.labels(call.route.name, call.target.name).inc()

    def call_ended(self, call: CallAdapter) -> None:
        call.target.calls.discard(call)
        self._silence.pop(call, None)
        if self._pooled(call):
            metrics.TARGET_CALLS.labels(call.route.name, call.target.name).dec()

    def allocated(self, call: CallAdapter, target: PoolTarget) -> None:
        """The allocation webhook chose the call's target: the call leaves the route's pool, whose per-target
        series and health are of the route's own targets only (a webhook's answers would be unbounded labels)."""
        self.call_ended(call)
        call.target = target

    def unreachable(self, call: CallAdapter) -> None:
        """A call's connected socket got ECONNREFUSED: ICMP port unreachable from its target. An allocated
        target is the allocating platform's to replace: its call stays."""
        if self._pooled(call):
            self.mark_down(call.route.name, call.target, "unreachable")

    def _pooled(self, call: CallAdapter) -> bool:
        return call.target in self.pools[call.route.name].targets

    def mark_down(self, route: str, target: PoolTarget, reason: str) -> None:
        """New calls skip the target until a probe answers; its calls move to another target of the route."""
        if not target.up:
            return
        target.up = False
        metrics.TARGET_UP.labels(route, target.name).set(0)
        metrics.TARGET_DOWN.labels(route, target.name, reason).inc()
        log_event(log, logging.WARNING, "target.down", route=route, target=target.name, reason=reason,
                  calls=len(target.calls))
        pool = self.pools[route]
        for call in tuple(target.calls):
            new = pool.pick(avoid=target)
            if new is None:
                log_event(log, logging.WARNING, "target.no_failover", route=route, target=target.name,
                          calls=len(target.calls), reason="no other target of the route is up")
                return
            self.call_ended(call)
            old, call.target = call.target, new
            self.call_started(call)
            metrics.TARGET_FAILOVERS.labels(route, old.name).inc()
            call.fail_over(old, reason)

    # ---- the pools' timer ----------------------------------------------------------------------------------

    def _tick(self) -> None:
        loop = self._loop
        loop.call_later(HEALTH_INTERVAL, self._tick)
        now = loop.time()
        for route, pool in self.pools.items():
            timeout = self._routes[route].rtp_timeout
            if timeout:
                self._check_rtp_back(route, pool, timeout, now)
        if now >= self._next_probe:
            self._next_probe = now + self._config.target_probe_interval
            for route, pool in self.pools.items():
                for target in pool.targets:
                    if not target.up:
                        self._probe(route, target)
        if self._config.route_resolve_interval and now >= self._next_resolve:
            self._next_resolve = now + self._config.route_resolve_interval
            loop.create_task(self._resolve_again())

    def _check_rtp_back(self, route: str, pool: TargetPool, timeout: float, now: float) -> None:
        """A target is down once a call that kept sending it RTP has had none back for `timeout` seconds."""
        for target in pool.targets:
            for call in tuple(target.calls) if target.up else ():
                session = call.session
                if session is None or session.state is not CallState.ANSWERED:
                    continue
                counters = session.counters
                seen = self._silence.get(call)
                if seen is None or counters.rtp_packets_in != seen[0]:
                    self._silence[call] = (counters.rtp_packets_in, counters.rtp_packets_out, now)
                elif counters.rtp_packets_out > seen[1] and now - seen[2] >= timeout:
                    self.mark_down(route, target, "no_rtp")
                    break

    def _probe(self, route: str, target: PoolTarget) -> None:
        """An empty RTCP receiver report to the target's RTCP port, from a socket connected to it."""
        host, port = target.address
        sock = socket.socket(self._family, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            sock.connect((host, port + 1))
            sock.send(PROBE_PACKET)
        except OSError:
            sock.close()
            return
        self._loop.call_later(PROBE_WAIT, self._probe_answered, route, target, sock)

    def _probe_answered(self, route: str, target: PoolTarget, sock: socket.socket) -> None:
        with sock:
            try:
                sock.recv(1)
            except BlockingIOError:
                pass  # no ICMP error: something listens there
            except OSError:
                return  # ECONNREFUSED: still down
        if not target.up:
            target.up = True
            metrics.TARGET_UP.labels(route, target.name).set(1)
            log_event(log, logging.INFO, "target.up", route=route, target=target.name)

    async def _resolve_again(self) -> None:
        """route_resolve_interval: the DNS names of the targets again, in the loop's executor. New calls take
        the new address; calls in progress keep theirs. A name that stopped resolving keeps its last address."""
        for route in self._routes.values():
            known = (*self.pools[route.name].targets, *self.forks[route.name])
            for written, target in zip(route.targets + route.forks, known, strict=True):
                if is_ip_address(written.host):
                    continue
                try:
                    infos = await self._loop.getaddrinfo(written.host, written.port, family=self._family,
                                                         type=socket.SOCK_DGRAM)
                except OSError as exc:
                    log_event(log, logging.WARNING, "target.resolve_failed", route=route.name, target=target.name,
                              error=str(exc))
                    continue
                address = address_of(infos, written.port)
                if address != target.address:
                    log_event(log, logging.INFO, "target.resolved", route=route.name, target=target.name,
                              address=address[0], was=target.address[0])
                    target.address = address

