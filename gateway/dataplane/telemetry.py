"""Who reports a call: its `call.answered` and `call.ended` log lines, its call events, its metrics.

The call's plain counters become Prometheus metrics as deltas, once a second and at hangup (so a scrape after
a call's `call.ended` line holds all it counted): counting per call and flushing periodically keeps metric
updates (a lock and an mmap write each, in multiprocess mode) off the per-frame path. The deltas of all a
worker's calls are summed per series first (MetricTotals), so a flush writes each series once, not once per
call: at 150 calls, per-call writes were 5 % of the worker's CPU.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.core.commands import NOT_A_COMMAND, Connect
from gateway.core.session import CallSession, CallState
from gateway.shared import metrics
from gateway.shared.config import Route
from gateway.shared.logs import log_event

if TYPE_CHECKING:  # aiohttp, behind call events, is imported only when call_events_url is set
    import asyncio

    from gateway.dataplane.call_events import CallEvents

# CallCounters field -> (metric, direction label or None)
log = logging.getLogger("gateway.call")

_TRAFFIC = (
    ("ws_frames_in", metrics.WS_FRAMES, "in"),
    ("ws_frames_out", metrics.WS_FRAMES, "out"),
    ("ws_bytes_in", metrics.WS_BYTES, "in"),
    ("ws_bytes_out", metrics.WS_BYTES, "out"),
    ("rtp_packets_in", metrics.RTP_PACKETS, "in"),
    ("rtp_packets_out", metrics.RTP_PACKETS, "out"),
    ("rtp_bytes_in", metrics.RTP_BYTES, "in"),
    ("rtp_bytes_out", metrics.RTP_BYTES, "out"),
    ("return_queue_dropped_bytes", metrics.RETURN_QUEUE_DROPPED, None),
    ("policed_bytes", metrics.UPSTREAM_POLICED, None),
)


class MetricTotals:
    """What a worker's calls have counted since the last publish, summed per Prometheus series."""

    def __init__(self) -> None:
        self._pending: dict[Any, int] = {}

    def add(self, series: Any, amount: int) -> None:
        self._pending[series] = self._pending.get(series, 0) + amount

    def publish(self) -> None:
        pending, self._pending = self._pending, {}
        for series, amount in pending.items():
            series.inc(amount)


class RouteSeries:
    """A route's per-call metric series, looked up once and shared by its calls: `labels()` takes a lock and
    builds a key, and fourteen lookups for every call were a visible share of its setup (py-spy under churn),
    besides a list of them per call in memory."""

    def __init__(self, route: str) -> None:
        self.traffic = tuple(
            (field, metric.labels(route, direction) if direction else metric.labels(route))
            for field, metric, direction in _TRAFFIC
        )
        self.lost = metrics.RTP_LOST.labels(route)
        self.reordered = metrics.RTP_REORDERED.labels(route)
        self.jitter = metrics.RTP_JITTER.labels(route)
        self.dtmf = metrics.DTMF_DIGITS.labels(route)
        self.active = metrics.CALLS_ACTIVE.labels(route)
        self.duration = metrics.CALL_DURATION.labels(route)


@functools.cache
def route_series(route: str) -> RouteSeries:
    return RouteSeries(route)


class CallTelemetry:
    """What one call has reported, and to whom: each flush adds only what is new."""

    def __init__(self, route: Route, call_events: CallEvents | None, totals: MetricTotals) -> None:
        self.route = name = route.name
        self._codec = route.codec
        self._call_events = call_events
        self._totals = totals
        self._series = route_series(name)
        self._reported: dict[str, int] = dict.fromkeys((name for name, _, _ in _TRAFFIC), 0)
        self._dropped: Counter[str] = Counter()
        self._ignored: Counter[str] = Counter()
        self._lost = 0
        self._reordered = 0
        self.kernel_drops = 0
        self._target = ""  # the target the call is on, once answered
        self._started: dict[str, Any] = {}  # its call.started event, again for a failover

    def flush(self, session: CallSession) -> None:
        counters = session.counters
        reported = self._reported
        totals = self._totals
        for name, series in self._series.traffic:
            value = getattr(counters, name)
            if value != reported[name]:
                totals.add(series, value - reported[name])
                reported[name] = value
        self._flush_counts(counters.rtp_dropped, self._dropped, lambda why: metrics.RTP_DROPPED.labels(self.route, why))
        if counters.ignored_commands[NOT_A_COMMAND] and not self._ignored[NOT_A_COMMAND]:
            log_event(log, logging.INFO, "call.text_ignored", call_id=session.call_id, route=self.route,
                      reason="a text message after the answer that is not a command (logged once per call)")
        self._flush_counts(counters.ignored_commands, self._ignored, metrics.COMMANDS_IGNORED.labels)
        return_path = session.return_path
        if return_path is None:
            return
        lost, reordered = return_path.jitter_buffer.lost_packets, return_path.receive_stats.reordered
        if lost != self._lost:
            totals.add(self._series.lost, lost - self._lost)
            self._lost = lost
        if reordered != self._reordered:
            totals.add(self._series.reordered, reordered - self._reordered)
            self._reordered = reordered
        if session.state is CallState.ANSWERED and return_path.receive_stats.received:
            self._series.jitter.observe(return_path.receive_stats.jitter_seconds)

    def _flush_counts(self, current: Counter[str], reported: Counter[str], series: Callable[[str], Any]) -> None:
        for key, value in current.items():
            if value != reported[key]:
                self._totals.add(series(key), value - reported[key])
                reported[key] = value

    def answered(
        self, session: CallSession, connect: Connect, sample_rate: int, rtp_port: int, target: str,
    ) -> asyncio.Task[None] | None:
        fmt = session.format
        self._target = target
        self._series.active.inc()
        log_event(
            log, logging.INFO, "call.answered", call_id=connect.call_id, route=self.route, sample_rate=sample_rate,
            codec=self._codec, wire_rate=fmt.wire_rate, ptime_ms=fmt.ptime_ms, payload_type=fmt.payload_type,
            rtp_port=rtp_port, target=target, headers=sorted(connect.headers),
        )
        if self._call_events:  # the post's task, for call_started_wait
            self._started = {
                "event": "call.started", "call_id": connect.call_id, "route": self.route,
                "application": connect.application, "headers": connect.headers, "sample_rate": sample_rate,
                "codec": self._codec, "wire_rate": fmt.wire_rate, "payload_type": fmt.payload_type,
                "ptime_ms": fmt.ptime_ms, "ssrc": session.packetizer.ssrc, "gateway_rtp_port": rtp_port,
                "target": target,
            }
            return self._call_events.post(self._started)
        return None

    def failed_over(self, session: CallSession, old: str, new: str, rtp_port: int, now: float) -> None:
        """The call moved to another target: call.ended tells the old one, call.started (reason failover, the
        new stream's SSRC) the new one."""
        self._target = new
        if self._call_events:
            self._call_events.post({
                "event": "call.ended", "call_id": session.call_id, "route": self.route, "target": old,
                "reason": "failover", "close_code": None, "by_sinch": False,
                "seconds": round(now - session.answered_at, 3),
            })
            self._call_events.post(self._started | {
                "target": new, "reason": "failover", "ssrc": session.packetizer.ssrc, "gateway_rtp_port": rtp_port,
            })

    def mark_settled(self, session: CallSession, mark_id: int, timestamp: int, outcome: str) -> None:
        """A playback mark was played or cleared: the RTCP answer is the session's; this is the call event."""
        if self._call_events:
            self._call_events.post({"event": f"mark.{outcome}", "call_id": session.call_id, "route": self.route,
                                    "mark_id": mark_id, "timestamp": timestamp})

    def dtmf(self, session: CallSession, digit: str, seconds: float) -> None:
        """A DTMF digit heard in the caller's audio: the RFC 4733 events are the session's; this counts it and
        is the call event. No log line: digits are often PINs and card numbers."""
        self._series.dtmf.inc()
        if self._call_events:
            self._call_events.post({"event": "dtmf", "call_id": session.call_id, "route": self.route,
                                    "digit": digit, "duration": round(seconds, 3)})

    def ended(self, session: CallSession) -> None:
        counters = session.counters
        route = self.route
        self.flush(session)
        self._totals.publish()  # the call's final counts are in the metrics before its call.ended line
        if session.outcome:
            metrics.CALLS.labels(route, session.outcome).inc()
        answered = session.outcome == "answer"
        if answered:
            self._series.active.dec()
            self._series.duration.observe(session.ended_at - session.answered_at)
        code = str(session.close_code) if session.close_code in metrics.KNOWN_CLOSE_CODES else "other"
        metrics.WS_CLOSES.labels(code, "sinch" if session.closed_by_peer else "gateway").inc()
        log_event(
            log, logging.INFO, "call.ended", call_id=session.call_id, route=route,
            close_code=session.close_code, reason=session.close_reason, by_peer=session.closed_by_peer,
            seconds=round(session.ended_at - session.started_at, 3), ws_frames_in=counters.ws_frames_in,
            ws_frames_out=counters.ws_frames_out, rtp_packets_out=counters.rtp_packets_out,
            rtp_packets_in=counters.rtp_packets_in, rtp_dropped=dict(counters.rtp_dropped),
            return_queue_dropped_bytes=counters.return_queue_dropped_bytes, heartbeats_sent=counters.heartbeats_sent,
            policed_bytes=counters.policed_bytes,
        )
        if self._call_events and answered:
            self._call_events.post({
                "event": "call.ended", "call_id": session.call_id, "route": route, "target": self._target,
                "close_code": session.close_code,
                "reason": session.close_reason, "by_sinch": session.closed_by_peer,
                "seconds": round(session.ended_at - session.answered_at, 3),
            })
