"""The thin adapter between one CallSession and the outside: a picows listener and a pair of UDP sockets.

It makes no protocol decisions. Data-path entry points are plain callbacks (no coroutine per frame), and an
exception inside one call closes that call with 1011, never the worker.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from typing import TYPE_CHECKING, Protocol

import cython
from picows import WSCloseCode

from gateway.core.call import CallOutput
from gateway.core.commands import Connect
from gateway.core.pool import PoolTarget
from gateway.core.session import CallSession, CallState, CloseCode
from gateway.dataplane.telemetry import CallTelemetry, MetricTotals
from gateway.dataplane.udpstats import socket_inode
from gateway.shared import metrics
from gateway.shared.config import Config, Route
from gateway.shared.logs import log_event

if TYPE_CHECKING:  # aiohttp, behind call events, is imported only when call_events_url is set
    from gateway.dataplane.allocation import Allocator
    from gateway.dataplane.call_events import CallEvents
    from gateway.dataplane.forks import Forks

if cython.compiled:  # C-level names for the compiled data plane (media.pxd cimports picows's types)
    from cython.cimports.cpython.bytes import PyBytes_AS_STRING
    from cython.cimports.gateway.dataplane.libc_net import send
    from cython.cimports.libc.errno import errno as c_errno
else:
    from picows import WSFrame, WSListener, WSMsgType, WSTransport

log = logging.getLogger("gateway.call")

CLOSE_TIMEOUT = 2.0  # seconds to wait for the peer's close frame before dropping the connection
MAX_CLOSE_REASON = 123  # RFC 6455 §5.5: control frame payload <= 125 bytes, 2 of them the code
NO_STATUS_RECEIVED = 1005  # RFC 6455 §7.4.1: recorded for a close frame that carried no code, never sent
# Time one audio frame in 64 from receipt to RTP send: each sample is a histogram observation at the next metrics
# flush (Python, two multiprocess mmap writes, a getpid each); one in 16 made 470 of them a second at 150 calls,
# and one in 64 still gives 117 samples a second there, plenty for a p99.
LATENCY_SAMPLE_MASK = cython.declare(cython.long, 63)
# What may wait in one connection's write buffer once it is past its high-water mark (64 KiB) and the peer has
# stopped reading: commands and pongs go there (audio waits in the session's capped return queue instead).
MAX_OUTPUT_BYTES = 256 * 1024


class TargetPools(Protocol):
    """The worker's media service pools (gateway.dataplane.pools): which target a call is on, and its health."""

    def call_started(self, call: CallAdapter) -> None: ...
    def call_ended(self, call: CallAdapter) -> None: ...
    def unreachable(self, call: CallAdapter) -> None: ...
    def allocated(self, call: CallAdapter, target: PoolTarget) -> None: ...


class DatagramSink(Protocol):
    """Where a call registers its sockets to have its datagrams read (gateway.dataplane.datagrams)."""

    def add(self, sock: socket.socket, call: CallAdapter, rtcp: bool) -> None: ...
    def remove(self, sock: socket.socket) -> None: ...
    def resume(self, sock: socket.socket, call: CallAdapter, rtcp: bool) -> None: ...


class CallHost(Protocol):
    """What a call's adapter needs from the worker that carries it (gateway.dataplane.worker implements it)."""

    loop: asyncio.AbstractEventLoop
    config: Config
    unix_offset: float  # unix time = loop time + unix_offset
    latency_samples: list[float]
    call_events: CallEvents | None
    allocator: Allocator | None  # with allocate_url
    datagrams: DatagramSink
    pools: TargetPools
    metric_totals: MetricTotals  # published by the worker once a second

    def admit(self, call: CallAdapter) -> bool: ...
    def pace(self, call: CallAdapter) -> None: ...  # its audio or gap waits on the clock: the fast tick's work
    def call_started(self, call: CallAdapter) -> None: ...
    def call_answered(self, call: CallAdapter) -> None: ...
    def call_ended(self, call: CallAdapter, answered: bool) -> None: ...


class _SessionOutput(CallOutput):
    """The adapter as its session's CallOutput: a compiled class has a single base, and the adapter's is picows's
    WSListener, so this forwards, at C level, what the session asks."""

    def __init__(self, adapter: CallAdapter) -> None:
        self._adapter = adapter

    def send_command(self, message: bytes) -> None:
        self._adapter.send_command(message)

    def send_audio(self, pcm: bytes) -> None:
        self._adapter.send_audio(pcm)

    def send_rtp(self, packet: bytes) -> None:
        self._adapter.send_rtp(packet)

    def send_rtcp(self, packet: bytes) -> None:
        self._adapter.send_rtcp(packet)

    def admit(self) -> bool:
        return self._adapter.admit()

    def answered(self, connect: Connect, sample_rate: int) -> None:
        self._adapter.answered(connect, sample_rate)

    def close(self, code: int, reason: str) -> None:
        self._adapter.close(code, reason)

    def mark_settled(self, mark_id: int, timestamp: int, outcome: str) -> None:
        self._adapter.telemetry.mark_settled(self._adapter.session, mark_id, timestamp, outcome)

    def dtmf(self, digit: str, seconds: float) -> None:
        self._adapter.telemetry.dtmf(self._adapter.session, digit, seconds)


class CallAdapter(WSListener):
    """One call's adapter: picows's listener for its websocket and the owner of its two UDP sockets. At the
    project's ~250-line guide because everything a websocket peer can do arrives here (frames, fragments,
    pings, closes, backpressure) and must be answered here, before the session sees anything."""

    def __init__(
        self, worker: CallHost, route: Route, target: PoolTarget, url_rate: int | None, rtp: socket.socket,
        rtcp: socket.socket, expected_call_id: str = "",
    ) -> None:
        self.worker = worker
        self.route = route
        self.target = target
        self.url_rate = url_rate
        self.expected_call_id = expected_call_id
        self.rtp = rtp
        self.rtcp = rtcp
        self.forks: Forks | None = None  # the route's fork=HOST:PORT copies, set by the router
        self._connect(target)
        self._rtp_fd, self._rtcp_fd = rtp.fileno(), rtcp.fileno()
        self.rtp_inode = socket_inode(rtp)
        self.telemetry = CallTelemetry(route, worker.call_events, worker.metric_totals)
        self._audio_frames = 0
        self.transport: WSTransport | None = None
        self.session: CallSession | None = None
        self._fragments: bytearray | None = None
        self._fragments_type = WSMsgType.BINARY
        self._output_paused = False
        self._held_rtp: list[tuple[bool, bytes]] | None = None  # RTP and RTCP waiting for call.started's answer
        self._answer: tuple[Connect, int] | None = None  # the answered call's connect and rate, until announced
        self._allocation: asyncio.Task[PoolTarget | None] | None = None  # the allocation webhook's question

    # ---- picows listener ------------------------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        loop = self.worker.loop
        self._clock = loop.time  # one call per frame, not two attribute lookups on the worker
        self.transport = transport
        self.session = CallSession(
            self.worker.config, self.route, _SessionOutput(self), loop.time(), self.url_rate, self.worker.unix_offset,
            self.expected_call_id,
        )
        self.worker.datagrams.add(self.rtp, self, False)
        self.worker.datagrams.add(self.rtcp, self, True)
        self.worker.call_started(self)
        self.worker.pools.call_started(self)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        session = self.session
        now = self._clock()
        try:
            msg_type = frame.msg_type
            if transport.is_close_frame_sent and msg_type != WSMsgType.CLOSE:
                return  # closing: picows may still deliver the frame it refused (e.g. over max_frame_bytes)
            if frame.rsv1 or frame.rsv2 or frame.rsv3:  # RFC 6455 §5.2: no extension was negotiated
                session.shutdown(CloseCode.PROTOCOL_ERROR, "reserved bits set", now)
            elif msg_type == WSMsgType.BINARY and frame.fin and self._fragments is None:
                self._audio_frames += 1
                if self._audio_frames & LATENCY_SAMPLE_MASK:
                    session.on_audio(frame.get_payload_as_memoryview(), now)
                else:
                    started = time.perf_counter()
                    session.on_audio(frame.get_payload_as_memoryview(), now)
                    self.worker.latency_samples.append(time.perf_counter() - started)
            elif msg_type == WSMsgType.TEXT and frame.fin and self._fragments is None:
                session.on_text(frame.get_payload_as_bytes(), now)
            elif msg_type == WSMsgType.PING:
                transport.send_pong(frame.get_payload_as_bytes())  # RFC 6455 §5.5.2
                self._check_output(now)
            elif msg_type == WSMsgType.CLOSE:
                self._on_close_frame(frame, now)
            elif msg_type != WSMsgType.PONG:
                self._on_fragment(frame, now)
        except Exception:
            self._fail("websocket_frame", now)

    def _on_close_frame(self, frame: WSFrame, now: float) -> None:
        """Sinch hangs up, or answers our close (RFC 6455 §5.5.1, §7.1.1): either way the TCP connection
        ends, aborted if it cannot drain within CLOSE_TIMEOUT."""
        transport = self.transport
        if transport.is_close_frame_sent:
            self._closed_by_gateway(now)  # Sinch answered our close: the gateway ended the call
        elif frame.payload_size == 0:  # a close frame without a status code: echoed as it came
            self.session.on_closed(NO_STATUS_RECEIVED, "", now)
            transport.send(WSMsgType.CLOSE, b"")
        elif _valid_close_code(code := int(frame.get_close_code())):
            self.session.on_closed(code, frame.get_close_reason() or "", now)
            transport.send_close(WSCloseCode(code))
        else:  # e.g. 1005, 1006 or 5000: never to be sent, so never to be echoed (RFC 6455 §7.4.1-2)
            self.session.on_closed(CloseCode.PROTOCOL_ERROR, f"peer sent close code {code}", now, by_peer=False)
            transport.send_close(WSCloseCode.PROTOCOL_ERROR)
        self._disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.session is None:  # the upgrade failed after routing: only the sockets to give back
            self._close_sockets()
            return
        now = self.worker.loop.time()
        try:
            if transport.is_close_frame_sent:
                self._closed_by_gateway(now)
            else:
                self.session.on_closed(CloseCode.ABNORMAL, "connection lost", now)
        except Exception:
            self._count_error("call_end")
        self._release()

    def _closed_by_gateway(self, now: float) -> None:
        """Our close frame went out: the session's own (it is closed already) or picows's, e.g. 1009 for an
        oversized frame, which the session learns of here."""
        sent = self.transport.close_handshake.sent if self.transport.close_handshake else None
        if sent is not None:
            self.session.on_closed(sent.code.value, sent.reason, now, by_peer=False)

    def pause_writing(self) -> None:
        """Sinch's connection stopped taking data (TCP backpressure): audio waits in the session's capped
        queue, and what is still written (commands, pongs) is checked against MAX_OUTPUT_BYTES."""
        self._output_paused = True
        if self.session is not None:
            self.session.set_output_paused(True, self.worker.loop.time())

    def resume_writing(self) -> None:
        self._output_paused = False
        if self.session is not None:
            self.session.set_output_paused(False, self.worker.loop.time())
            self._watch_pacing()

    # ---- CallOutput ----------------------------------------------------------------------------------

    def send_command(self, message: bytes) -> None:
        self.transport.send(WSMsgType.TEXT, message)
        self._check_output(self.worker.loop.time())

    def send_audio(self, pcm: bytes) -> None:
        self.transport.send(WSMsgType.BINARY, pcm)

    def send_rtp(self, packet: bytes) -> None:
        if self._held_rtp is not None:
            self._held_rtp.append((False, packet))
        else:
            error = _sent(self.rtp, self._rtp_fd, packet)
            if error:
                self._send_failed("send_error", error)  # ICMP unreachable, buffer full: UDP loses
            if self.forks is not None:
                self._count_fork_drops(self.forks.send_rtp(packet))

    def send_rtcp(self, packet: bytes) -> None:
        if self._held_rtp is not None:
            self._held_rtp.append((True, packet))
        else:
            error = _sent(self.rtcp, self._rtcp_fd, packet)
            if error:
                self._send_failed("rtcp_send_error", error)
            if self.forks is not None:
                self._count_fork_drops(self.forks.send_rtcp(packet))

    def _count_fork_drops(self, missed: int) -> None:
        if missed:
            self.session.counters.rtp_dropped["fork_send_error"] += missed

    def _send_failed(self, reason: str, error: int) -> None:
        self.session.counters.rtp_dropped[reason] += 1
        if error == errno.ECONNREFUSED:
            self.on_unreachable()

    def admit(self) -> bool:
        return self.worker.admit(self)

    def answered(self, connect: Connect, sample_rate: int) -> None:
        self.worker.call_answered(self)
        self._answer = (connect, sample_rate)
        allocator = self.worker.allocator
        if allocator is None:
            self._announce(None)
            return
        self._held_rtp = []  # issue 15.4: the call's RTP waits for the allocation webhook's target
        self._allocation = allocator.allocate(connect.call_id, self.route.name, connect.headers)
        self._allocation.add_done_callback(self._allocated)

    def _allocated(self, allocation: asyncio.Task[PoolTarget | None]) -> None:
        if self._answer is None:
            return  # the call ended first, and was announced at the route's target then
        try:
            self._announce(allocation.result())
        except Exception:
            self._fail("allocation", self.worker.loop.time())

    def _announce(self, allocated: PoolTarget | None) -> None:
        """The call's target is known (the webhook's answer, else the route's target it has): call.answered in
        the log, call.started to call events, then its RTP (held until call.started is answered, with
        call_started_wait)."""
        (connect, sample_rate), self._answer = self._answer, None
        if allocated is not None:
            self.worker.pools.allocated(self, allocated)
            self._connect(allocated)
        started = self.telemetry.answered(self.session, connect, sample_rate, self.rtp.getsockname()[1],
                                          self.target.name)
        wait = self.worker.config.call_started_wait
        if wait and started is not None:  # issue 12.7: the media service learns of the call before its audio
            if self._held_rtp is None:
                self._held_rtp = []
            started.add_done_callback(self._started_answered)
            self.worker.loop.call_later(wait, self._send_held_rtp, True)
        else:
            self._send_held_rtp(False)

    def _started_answered(self, _task: object) -> None:
        self._send_held_rtp(False)

    def _send_held_rtp(self, wait_expired: bool) -> None:
        """The call's RTP and RTCP held for call_started_wait go out, in order; from now on, at once."""
        held, self._held_rtp = self._held_rtp, None
        if held is None:
            return
        if wait_expired:
            log_event(log, logging.WARNING, "call.started_wait_expired", call_id=self.session.call_id,
                      reason="call.started not answered in time", held_packets=len(held))
        for rtcp, packet in held:
            if rtcp:
                self.send_rtcp(packet)
            else:
                self.send_rtp(packet)

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake; the TCP connection ends when Sinch answers with its close frame
        (RFC 6455 §7.1.1: the server closes TCP after the handshake), or is aborted after CLOSE_TIMEOUT."""
        transport = self.transport
        if not transport.is_close_frame_sent:
            transport.send_close(WSCloseCode(code), reason.encode()[:MAX_CLOSE_REASON])
        self.worker.loop.call_later(CLOSE_TIMEOUT, self._abort, "close_timeout")

    # ---- ending the connection -------------------------------------------------------------------------

    def _disconnect(self) -> None:
        """Close TCP once what is queued is written; a peer that does not read it costs CLOSE_TIMEOUT at most."""
        self.transport.disconnect()
        self.worker.loop.call_later(CLOSE_TIMEOUT, self._abort, "close_timeout")

    def _abort(self, reason: str) -> None:
        """Drop the connection now, whatever is queued: its RTP ports are given back in on_ws_disconnected."""
        if self.transport.is_disconnected:
            return
        metrics.CONNECTIONS_ABORTED.labels(reason).inc()
        log_event(log, logging.WARNING, "call.aborted", call_id=self.session.call_id, reason=reason)
        self.transport.disconnect(graceful=False)

    def _check_output(self, now: float) -> None:
        """All output to one connection is capped: a peer that stops reading (and keeps sending pings) would
        otherwise grow the worker without bound. Past the cap the call ends: nothing more can reach Sinch."""
        if self._output_paused and self.transport.underlying_transport.get_write_buffer_size() > MAX_OUTPUT_BYTES:
            self.session.on_closed(CloseCode.ABNORMAL, "output over its cap: the peer does not read", now,
                                   by_peer=False)
            self._abort("output_overflow")

    # ---- the call's target (gateway.dataplane.pools) ----------------------------------------------------

    def _connect(self, target: PoolTarget) -> None:
        """Connect both sockets to the target (RFC 3550 symmetric RTP): the kernel keeps out datagrams from anyone
        else, and send/recv need no address. An error pending from the previous target is read off (SO_ERROR
        clears it), or the first send to this one would report it."""
        host, port = target.address
        for sock, to in ((self.rtp, (host, port)), (self.rtcp, (host, port + 1))):
            sock.connect(to)
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)

    def on_unreachable(self) -> None:
        """ICMP port unreachable from the target (ECONNREFUSED on a send or a receive): it is marked down, and
        the sockets are read from again (a target that restarts on the same port is heard again)."""
        try:
            self._resume_reading()
            self.worker.pools.unreachable(self)
        except Exception:
            self._fail("failover", self.worker.loop.time())

    def fail_over(self, old: PoolTarget, reason: str) -> None:
        """The pools moved this call to `self.target`, `old` having gone down: the sockets connect to it, and an
        answered call starts a new RTP stream there (a new SSRC: RFC 3550 §8.2), announced by call events."""
        session = self.session
        now = self.worker.loop.time()
        self._connect(self.target)
        self._resume_reading()
        log_event(log, logging.WARNING, "call.failover", call_id=session.call_id, route=self.route.name,
                  target=self.target.name, previous=old.name, reason=reason)
        if session.state is CallState.ANSWERED and self._answer is None:  # else announced later, at its target
            if self.forks is not None:
                self.forks.restart()
            session.restart_stream(now)
            self._watch_pacing()
            self.telemetry.failed_over(session, old.name, self.target.name, self.rtp.getsockname()[1], now)

    def _resume_reading(self) -> None:
        for sock, rtcp in ((self.rtp, False), (self.rtcp, True)):
            self.worker.datagrams.resume(sock, self, rtcp)

    # ---- internals -------------------------------------------------------------------------------------

    def on_datagram(self, data: bytes, rtcp: bool, now: float) -> None:
        """One datagram from the route (the sockets are connected to it), read by the worker's DatagramReader."""
        try:
            if rtcp:
                self.session.on_rtcp(data, now)
            else:
                self.session.on_rtp(data, now)
            self._watch_pacing()
        except Exception:
            self._fail("datagram", now)

    def _watch_pacing(self) -> None:
        """What came in left audio or a gap waiting on the clock: the worker's fast tick takes the call on (and
        lets it go once nothing waits), so it never scans the calls that have nothing due."""
        if self.session.pacing_pending():
            self.worker.pace(self)

    def _on_fragment(self, frame: WSFrame, now: float) -> None:
        """Reassemble a fragmented message (RFC 6455 §5.4), bounded by max_frame_bytes."""
        if frame.msg_type != WSMsgType.CONTINUATION:
            if self._fragments is not None:  # RFC 6455 §5.4: only control frames may come between fragments
                self.session.shutdown(CloseCode.PROTOCOL_ERROR, "a new message inside a fragmented one", now)
                return
            self._fragments = bytearray()
            self._fragments_type = frame.msg_type
        elif self._fragments is None:
            self.session.shutdown(CloseCode.PROTOCOL_ERROR, "continuation without a first fragment", now)
            return
        self._fragments += frame.get_payload_as_memoryview()
        if len(self._fragments) > self.worker.config.max_frame_bytes:
            self._fragments = None
            self.session.shutdown(CloseCode.MESSAGE_TOO_BIG, "fragmented message over max_frame_bytes", now)
            return
        if frame.fin:
            message, self._fragments = bytes(self._fragments), None
            if self._fragments_type == WSMsgType.TEXT:
                self.session.on_text(message, now)
            else:
                self.session.on_audio(message, now)

    def _count_error(self, where: str) -> None:
        """An exception in this call's code: logged with its traceback and counted; the caller decides the rest."""
        metrics.INTERNAL_ERRORS.labels(where).inc()
        log.exception("call.error", extra={"fields": {"call_id": self.session.call_id, "where": where}})

    def _fail(self, where: str, now: float) -> None:
        """This call's code raised: close this call with 1011 and nothing else. If even the session cannot close
        itself, drop the connection; on_ws_disconnected then gives everything back."""
        self._count_error(where)
        try:
            self.session.shutdown(CloseCode.INTERNAL_ERROR, "internal error", now)
        except Exception:
            self._count_error("call_end")
            self.transport.disconnect(graceful=False)

    def flush_metrics(self) -> None:
        try:
            self.telemetry.flush(self.session)
        except Exception:
            self._fail("metrics", self.worker.loop.time())

    def tick(self, now: float, pacing_only: bool = False) -> None:
        """The worker's timer: pacing only (the fast tick) or every deadline too (the slow one)."""
        try:
            if pacing_only:
                self.session.on_pacing_tick(now)
            else:
                self.session.on_tick(now)
        except Exception:
            self._fail("tick", now)

    def _close_sockets(self) -> None:
        self.rtp.close()
        self.rtcp.close()
        if self.forks is not None:
            self.forks.close()

    def _release(self) -> None:
        """The call is over: its sockets and its place in the worker are given back whatever reporting does."""
        if self._answer is not None:  # ended while the allocation webhook was asked: the route's target it has
            self._allocation.cancel()  # and the question is withdrawn: its answer could place nothing now
            try:
                self._announce(None)
            except Exception:
                self._count_error("allocation")
        self._send_held_rtp(False)  # the call ended first: what it sent, its BYE included, still goes out
        for sock in (self.rtp, self.rtcp):
            self.worker.datagrams.remove(sock)
        self._close_sockets()
        self.worker.pools.call_ended(self)
        try:
            self.telemetry.ended(self.session)
        except Exception:
            self._count_error("call_end")
        finally:
            self.worker.call_ended(self, self.session.outcome == "answer")


def tick_calls(calls: tuple[CallAdapter, ...], now: float, pacing_only: bool, pacing: set[CallAdapter]) -> None:
    """The worker's shared timer over `calls`: every call's deadlines (the slow tick, over every call), or only
    the pacing (the fast tick, every few ms, over the calls in `pacing`). `pacing` is left holding those of
    them whose audio or gap still waits on the clock. Compiled, a loop in C over typed calls."""
    for call in calls:
        call.tick(now, pacing_only)
        if call.session.pacing_pending():
            pacing.add(call)
        else:
            pacing.discard(call)


def _sent(sock: socket.socket, fd: int, packet: bytes) -> int:
    """One datagram on a connected socket (`fd` is its descriptor); 0, or the errno of the kernel's refusal.
    Compiled, the system call itself, with no Python call or exception in between."""
    if cython.compiled:
        if send(fd, PyBytes_AS_STRING(packet), len(packet), 0) >= 0:
            return 0
        return c_errno
    try:
        sock.send(packet)
    except OSError as exc:
        return exc.errno or errno.EIO
    return 0


def _valid_close_code(code: int) -> bool:
    """A close code a peer may send (RFC 6455 §7.4.1-2, IANA registry): 1000-1003, 1007-1014, 3000-4999."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999
