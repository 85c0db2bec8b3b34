"""One worker process: a uvloop loop, a picows server, the calls it carries, and their shared timers.
`run_worker` is its entry point, which the supervisor names as a target and imports only after the fork.

The listener factory is gateway.dataplane.router: it maps `/stream/{route}` to a new call or refuses the upgrade
with an HTTP status.

Capacity: each call holds three descriptors; at start the worker measures what it holds at idle and, from its
open-files limit, how many calls it can carry (gateway.shared.host_limits). Past that, upgrades get 503 `no_fds`
while descriptors remain for the housekeeping; an accept that still finds none pauses (gateway.dataplane.listener).

Signals (sent by the supervisor, or by hand to a lone worker):
- SIGTERM: drain. New upgrades get 503; calls in progress go on until they end or drain_timeout passes,
  then are closed with 1001. From the kernel when the supervisor died (PR_SET_PDEATHSIG): the listening
  socket is closed at once instead, so a gateway started in its place can bind the port.
- SIGUSR1: retire (reload, rolling restart). Stop accepting, so the new workers take the new calls; finish the
  rest as for SIGTERM, but waiting up to reload_drain_timeout (4 hours by default: a reload never cuts a call).
  A SIGTERM during that wait brings the deadline to drain_timeout.
- SIGINT: fast stop: every call closed with 1001 now.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import uvloop
from picows import ws_create_server

from gateway.core.hold import hold_frames
from gateway.core.session import CloseCode
from gateway.dataplane.claims import PendingClaims
from gateway.dataplane.datagrams import DatagramReader
from gateway.dataplane.echo import EchoService
from gateway.dataplane.errors import count_internal_error
from gateway.dataplane.listener import PausableListener
from gateway.dataplane.loop_timer import LoopTimer
from gateway.dataplane.media import CallAdapter, tick_calls
from gateway.dataplane.pools import MediaPools
from gateway.dataplane.ports import pairs_taken
from gateway.dataplane.router import UpgradeRouter
from gateway.dataplane.telemetry import MetricTotals
from gateway.dataplane.udpstats import udp_sockets
from gateway.shared import host_limits, metrics
from gateway.shared.build import data_plane
from gateway.shared.config import EMBEDDED_ECHO_ROUTE, LOCAL_REPLAY_STORE, SINCH_RATES, Config, Route
from gateway.shared.exit_codes import EXIT_BOOT_FAILURE
from gateway.shared.fleet_replay import FleetReplayStore
from gateway.shared.logs import RateLimitedEvent, log_event
from gateway.shared.replay import ReplayGuard
from gateway.shared.resolve import rtp_family
from gateway.shared.scoreboard import Scoreboard, WorkerState
from gateway.shared.tls import server_context

if TYPE_CHECKING:
    from gateway.dataplane.allocation import Allocator
    from gateway.dataplane.call_events import CallEvents

log = logging.getLogger("gateway.worker")

HANDSHAKE_TIMEOUT = 5.0
READ_BUFFER = 4096  # per connection, grown by picows for a larger frame: a 20 ms frame is 3,840 bytes at 96 kHz
HOUSEKEEPING_INTERVAL = 0.5  # heartbeat to the supervisor
FLUSH_EVERY = 2  # housekeeping rounds between metric flushes (1 s)
UDP_TABLE_EVERY = 10  # housekeeping rounds between /proc/net/udp reads (5 s): kernel drops, RTP ports taken
ACCEPT_RETRY = 0.25  # seconds before accepting again after running out of descriptors, unless a call ends first
CLOSE_GRACE = 2.5  # after closing every call, how long to wait for the close handshakes
SLOW_TICK_EVERY = 10  # deadlines, heartbeats and RTCP reports: every 10 tick intervals (100 ms at the default)


class Worker:
    def __init__(
        self, config: Config, slot: int, scoreboard: Scoreboard, replay_guard: ReplayGuard
    ) -> None:
        self.config = config
        self.slot = slot
        self.scoreboard = scoreboard
        self.replay_guard = replay_guard
        self.fleet_claims: PendingClaims | None = None  # made in run(): a fleet's store (replay_store = redis://)
        self.routes: dict[str, Route] = dict(config.routes)
        self.pools = MediaPools(config)
        self.calls: set[CallAdapter] = set()
        self.pacing: set[CallAdapter] = set()  # the calls the fast tick paces (joined through pace())
        self.answered_calls = 0
        self.state = WorkerState.BOOTING
        self._drain_deadline: LoopTimer  # made in run(), with the loop
        self.latency_samples: list[float] = []
        self.metric_totals = MetricTotals()
        self.cpu_percent = 0.0
        self.loop: asyncio.AbstractEventLoop
        self.unix_offset = 0.0
        self._parent = os.getppid()
        self._echo: EchoService | None = None
        self.call_events = _call_events(config)
        self.allocator = _allocator(config)
        self._server: asyncio.Server | None = None
        self._done: asyncio.Event
        self._max_lag = 0.0
        self._tick_timer: LoopTimer  # made in run(), with the loop
        self._next_slow_tick = 0.0
        self._rounds = 0
        self._cpu_mark = (time.monotonic(), time.process_time())
        self._calls_gauge = metrics.WORKER_CALLS_ACTIVE.labels(slot)
        self.calls_by_descriptors = 0  # set once serving, from the descriptors held at idle
        self._listener: PausableListener
        self.router = UpgradeRouter(self)
        self._accept_paused_log = RateLimitedEvent(log, logging.WARNING, "worker.accept_paused")

    async def run(self, sock: socket.socket | None = None) -> None:
        """Serve until told to stop; `sock` is a listener bound by the supervisor."""
        self.loop = loop = asyncio.get_running_loop()
        self._tick_timer = LoopTimer(loop, self._tick)
        self._drain_deadline = LoopTimer(loop, lambda _at: self._close_all("drain timeout"))
        self.unix_offset = time.time() - loop.time()
        self._done = asyncio.Event()
        if not self.routes:
            self._echo = EchoService()
            port = await self._echo.start()
            self.routes[EMBEDDED_ECHO_ROUTE] = Route(name=EMBEDDED_ECHO_ROUTE, host="127.0.0.1", port=port)
            self.pools.add(self.routes[EMBEDDED_ECHO_ROUTE])
        metrics.create_worker_series(list(self.routes))
        for route in self.routes.values():
            if route.hold_sound:  # converted to every call rate now, never at a call's failover
                for rate in SINCH_RATES:
                    hold_frames(route.hold_sound, rate)
        if self.config.replay_store != LOCAL_REPLAY_STORE:
            self.fleet_claims = PendingClaims(FleetReplayStore.from_config(self.config, "worker"), loop)
            await self.fleet_claims.store.connect()
        self.pools.start(loop)
        self.datagrams = DatagramReader(loop)
        loop.add_signal_handler(signal.SIGTERM, self._terminate)
        loop.add_signal_handler(signal.SIGUSR1, self.drain, False, self.config.reload_drain_timeout)
        loop.add_signal_handler(signal.SIGINT, self.stop_now)
        self._server = await self._listen(sock)
        bound = self._server.sockets[0].getsockname()
        capacity = self._size_capacity()
        self.state = WorkerState.SERVING
        self._beat()  # the supervisor sees it serving before anyone reads the log line below
        log_event(log, logging.INFO, "worker.listening", address=f"{bound[0]}:{bound[1]}", slot=self.slot,
                  routes={name: route.url() for name, route in self.routes.items()}, data_plane=data_plane(),
                  **capacity)
        _guarded("timer", self._read_udp_table)
        self._tick(loop.time())
        self._housekeeping()
        await self._done.wait()
        self._flush_metrics()
        self.datagrams.close()
        if self._echo:
            self._echo.close()
        if self.call_events:
            await self.call_events.close()
        if self.allocator:
            await self.allocator.close()
        if self.fleet_claims:
            await self.fleet_claims.store.close()
        log_event(log, logging.INFO, "worker.stopped", slot=self.slot)

    async def _listen(self, sock: socket.socket | None) -> asyncio.Server:
        """picows's server on the listener the supervisor bound (or one of its own: a lone worker in tests)."""
        if sock is None:  # a lone worker (tests): no supervisor bound the listener for it
            host, port = self.config.listen_address
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.create_server((host, port), family=family, backlog=host_limits.LISTEN_BACKLOG)
        self._listener = PausableListener(sock, self._out_of_descriptors)
        listen = {}
        if tls := server_context(self.config.tls_cert, self.config.tls_key):
            listen.update(ssl=tls, ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
        # aiofastnet, whose server accepts through PausableListener.accept(); it listen()s again with `backlog`.
        return await ws_create_server(
            self.router.route_request, sock=self._listener, backlog=host_limits.LISTEN_BACKLOG, use_aiofastnet=True,
            **listen, max_frame_size=self.config.max_frame_bytes, websocket_handshake_timeout=HANDSHAKE_TIMEOUT,
            read_buffer_init_size=READ_BUFFER,
            enable_auto_pong=False,  # pongs are written by the adapter, under its output cap
        )

    # ---- admission -------------------------------------------------------------------------------------

    def _out_of_descriptors(self, exc: OSError) -> None:
        """accept() found no descriptor: the listener has paused; try again when a call ends or shortly."""
        metrics.ACCEPTS_PAUSED.inc()
        self._accept_paused_log(slot=self.slot, error=exc.strerror, calls=len(self.calls))
        self.loop.call_later(ACCEPT_RETRY, self._listener.resume)

    def _size_capacity(self) -> dict[str, int]:
        """The calls this worker can take: what its open-files limit leaves once the descriptors it holds at
        idle (measured now, serving and with no call) and the headroom are set aside, within max_calls and its
        share of rtp_ports. Published as gateway_calls_capacity; the figures go in worker.listening."""
        idle = host_limits.descriptors_in_use()
        soft, _ = host_limits.open_files_limit()
        self.calls_by_descriptors = host_limits.calls_for_descriptors(
            soft, host_limits.worker_reserve(self.config, idle))
        capacity = host_limits.worker_capacity(self.config, self.calls_by_descriptors, self.config.worker_count)
        metrics.CALLS_CAPACITY.set(capacity)
        return {"open_files": soft, "descriptors_at_idle": idle, "calls_by_descriptors": self.calls_by_descriptors,
                "calls_capacity": capacity}

    @property
    def serving(self) -> bool:
        """New calls are taken (not booting, not draining)."""
        return self.state is WorkerState.SERVING

    def admit(self, call: CallAdapter) -> bool:
        """Admission control at connect time: over the caps, or before the call's token is claimed (a client
        that did not wait for the 101: gateway.dataplane.claims), the call is answered busy."""
        if self.fleet_claims and self.fleet_claims.holds(call):
            return False
        config = self.config
        if config.max_calls and self.answered_calls >= config.max_calls:
            return False
        return not (config.max_cpu_percent and self.cpu_percent >= config.max_cpu_percent)

    def call_started(self, call: CallAdapter) -> None:
        self.calls.add(call)
        if self.fleet_claims:
            self.fleet_claims.connected(call)

    def call_answered(self, call: CallAdapter) -> None:
        self.answered_calls += 1
        self._calls_gauge.set(self.answered_calls)

    def call_ended(self, call: CallAdapter, answered: bool) -> None:
        self.calls.discard(call)
        self.pacing.discard(call)
        self._listener.resume()  # its descriptors are free: accept again if that had paused
        if answered:
            self.answered_calls -= 1
            self._calls_gauge.set(self.answered_calls)
        if self.state is WorkerState.DRAINING and not self.calls:
            self._done.set()

    # ---- stopping --------------------------------------------------------------------------------------

    def drain(self, decline: bool, timeout: float) -> None:
        """Stop taking calls (decline with 503: SIGTERM; or stop accepting: a retire after a reload, an orphan)
        and end once the calls in progress have, or after `timeout` seconds. Draining already, a shorter
        timeout (a SIGTERM while retiring) brings the deadline forward."""
        if self.state is WorkerState.DRAINING:
            if self._drain_deadline.armed:
                self._set_drain_deadline(timeout)
            return
        self.state = WorkerState.DRAINING
        metrics.CALLS_CAPACITY.set(0)
        if not decline:
            self._server.close()
        log_event(log, logging.INFO, "worker.draining", slot=self.slot, calls=len(self.calls),
                  mode="decline" if decline else "retire", timeout=timeout)  # once no new call can reach it
        self._beat()
        if not self.calls:
            self._done.set()
            return
        self._set_drain_deadline(timeout)

    def _set_drain_deadline(self, seconds: float) -> None:
        """Close what is left in `seconds`, unless an earlier deadline is set already."""
        self._drain_deadline.no_later_than(self.loop.time() + seconds)

    def _terminate(self) -> None:
        """SIGTERM: from the supervisor, a drain that declines new upgrades; from the kernel because the
        supervisor died, an orphan's retreat."""
        if self._orphaned():
            self._leave_as_orphan()
        else:
            self.drain(decline=True, timeout=self.config.drain_timeout)

    def _orphaned(self) -> bool:
        return os.getppid() != self._parent

    def _leave_as_orphan(self) -> None:
        """The supervisor is gone (killed): close the listening socket at once, so a gateway started in its
        place can bind the port (every child holds only the listeners it serves), and finish the calls in
        progress as a drain would."""
        self._server.close()
        log_event(log, logging.WARNING, "worker.orphaned", slot=self.slot, calls=len(self.calls))
        self.drain(decline=False, timeout=self.config.drain_timeout)

    def stop_now(self) -> None:
        self.state = WorkerState.DRAINING
        self._close_all("gateway shutting down")

    def _close_all(self, reason: str) -> None:
        now = self.loop.time()
        for call in tuple(self.calls):
            call.session.shutdown(CloseCode.GOING_AWAY, reason, now)
        if self.calls:
            self.loop.call_later(CLOSE_GRACE, self._done.set)
        else:
            self._done.set()

    # ---- timers ----------------------------------------------------------------------------------------

    def _tick(self, scheduled: float) -> None:
        """One timer for all calls instead of one per call. A slow tick (every SLOW_TICK_EVERY tick intervals)
        runs every call's deadlines; between them the timer fires every tick interval only while some call's
        audio or gap waits on the clock (`pacing`), and pacing only those: a worker whose calls all play as their
        RTP comes wakes ten times a second for its timer, not a hundred. It is re-armed whatever happens here,
        so an exception can cost one tick, never the timer."""
        now = self.loop.time()
        try:
            lag = now - scheduled
            if lag > self._max_lag:
                self._max_lag = lag
            metrics.LOOP_LAG.observe(lag)
            slow = now >= self._next_slow_tick
            if slow:
                self._next_slow_tick = max(self._next_slow_tick + SLOW_TICK_EVERY * self.config.tick_interval, now)
            tick_calls(tuple(self.calls if slow else self.pacing), now, not slow, self.pacing)
        except Exception:
            count_internal_error(log, "worker.error", "tick")
        finally:
            next_at = scheduled + self.config.tick_interval if self.pacing else self._next_slow_tick
            self._tick_timer.arm(max(next_at, now))

    def pace(self, call: CallAdapter) -> None:
        """A call's audio or gap now waits on the clock (CallHost.pace): the timer comes within a tick interval."""
        self.pacing.add(call)
        self._tick_timer.no_later_than(self.loop.time() + self.config.tick_interval)

    def _housekeeping(self) -> None:
        """Heartbeat from the loop itself (a stuck loop stops beating and is replaced), plus slow work. Re-armed
        first, and each task guarded: a failure in one is logged and counted, and the worker keeps beating."""
        self.loop.call_later(HOUSEKEEPING_INTERVAL, self._housekeeping)
        self._rounds += 1
        if self._orphaned() and self._server.is_serving():
            self._leave_as_orphan()  # no SIGTERM came (not Linux, or the parent died before the prctl)
        self._beat()
        if self._rounds % FLUSH_EVERY == 0:
            _guarded("metrics", self._flush_metrics)
        if self._rounds % UDP_TABLE_EVERY == 0:
            _guarded("timer", self._read_udp_table)

    def _beat(self) -> None:
        self.scoreboard.beat(self.slot, os.getpid(), self.state)

    def _flush_metrics(self) -> None:
        for call in tuple(self.calls):
            call.flush_metrics()
        self.metric_totals.publish()  # also what calls that ended since the last flush counted
        samples, self.latency_samples = self.latency_samples, []
        for sample in samples:
            metrics.UPSTREAM_LATENCY.observe(sample)
        metrics.RETURN_QUEUE.set(sum(call.session.return_queue_bytes for call in self.calls))
        metrics.WORKER_LOOP_LAG.labels(self.slot).set(self._max_lag)
        self._max_lag = 0.0
        wall, cpu = time.monotonic(), time.process_time()
        metrics.WORKER_CPU.labels(self.slot).set(cpu)
        metrics.WORKER_MEMORY.labels(self.slot).set(host_limits.resident_memory_bytes())
        metrics.WORKER_FDS.labels(self.slot).set(host_limits.descriptors_in_use())
        then_wall, then_cpu = self._cpu_mark
        self.cpu_percent = 100 * (cpu - then_cpu) / max(wall - then_wall, 1e-6)
        self._cpu_mark = (wall, cpu)

    def _read_udp_table(self) -> None:
        """From /proc/net/udp: the kernel's drops on this worker's RTP sockets, and how much of rtp_ports the
        machine has taken (every worker shares the range)."""
        by_inode = {call.rtp_inode: call for call in self.calls}
        low, high = port_range = self.config.rtp_port_range
        bound = set()
        for port, inode, drops in udp_sockets():
            if low <= port <= high:
                bound.add(port)
            call = by_inode.get(inode)
            if call is not None and drops > call.telemetry.kernel_drops:
                metrics.UDP_RECEIVE_DROPS.inc(drops - call.telemetry.kernel_drops)
                call.telemetry.kernel_drops = drops
        taken = pairs_taken(bound, port_range)
        metrics.RTP_PORT_PAIRS_IN_USE.set(taken)
        metrics.RTP_PORT_PAIRS_FREE.set(self.config.rtp_port_pairs - taken)


def _call_events(config: Config) -> CallEvents | None:
    """Call events only when call_events_url is set: aiohttp, which posts them, loads the system's CA
    certificates when imported (a fifth of a second of CPU, and memory, in every worker)."""
    if not config.call_events_url:
        return None
    from gateway.dataplane.call_events import CallEvents

    return CallEvents(config.call_events_url, config.call_events_timeout)


def _allocator(config: Config) -> Allocator | None:
    """The allocation webhook only when allocate_url is set (aiohttp's import: see _call_events)."""
    if not config.allocate_url:
        return None
    from gateway.dataplane.allocation import Allocator

    return Allocator(config.allocate_url, config.allocate_timeout, rtp_family(config))


def run_worker(
    config: Config, sock: socket.socket, slot: int, scoreboard: Scoreboard, replay_guard: ReplayGuard
) -> int:
    try:
        uvloop.run(Worker(config, slot, scoreboard, replay_guard).run(sock))
    except OSError as exc:
        log_event(log, logging.ERROR, "worker.boot_failed", error=str(exc))
        return EXIT_BOOT_FAILURE
    return 0


def _guarded(where: str, task: Callable[[], None]) -> None:
    try:
        task()
    except Exception:
        count_internal_error(log, "worker.error", where)
