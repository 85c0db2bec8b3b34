"""Turns each call's plain counters into Prometheus metrics, as deltas, once a second and at hangup.

Counting per call and flushing periodically keeps metric updates (a lock and an mmap write each, in
multiprocess mode) off the per-frame path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from gateway.core.session import CallSession, CallState
from gateway.shared import metrics

# CallCounters field -> (metric, direction label or None)
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


class CallTelemetry:
    """What one call has already reported, so each flush adds only what is new."""

    def __init__(self, route: str) -> None:
        self.route = route
        self._series = [
            (name, metric.labels(route, direction) if direction else metric.labels(route))
            for name, metric, direction in _TRAFFIC
        ]
        self._lost_series = metrics.RTP_LOST.labels(route)
        self._reordered_series = metrics.RTP_REORDERED.labels(route)
        self._jitter_series = metrics.RTP_JITTER.labels(route)
        self._reported: dict[str, int] = dict.fromkeys((name for name, _, _ in _TRAFFIC), 0)
        self._dropped: Counter[str] = Counter()
        self._ignored: Counter[str] = Counter()
        self._lost = 0
        self._reordered = 0
        self.kernel_drops = 0

    def flush(self, session: CallSession) -> None:
        counters = session.counters
        reported = self._reported
        for name, metric in self._series:
            value = getattr(counters, name)
            if value != reported[name]:
                metric.inc(value - reported[name])
                reported[name] = value
        _flush_counts(counters.rtp_dropped, self._dropped, lambda why: metrics.RTP_DROPPED.labels(self.route, why))
        _flush_counts(counters.ignored_commands, self._ignored, metrics.COMMANDS_IGNORED.labels)
        return_path = session.return_path
        if return_path is None:
            return
        lost, reordered = return_path.jitter_buffer.lost_packets, return_path.receive_stats.reordered
        if lost != self._lost:
            self._lost_series.inc(lost - self._lost)
            self._lost = lost
        if reordered != self._reordered:
            self._reordered_series.inc(reordered - self._reordered)
            self._reordered = reordered
        if session.state is CallState.ANSWERED and return_path.receive_stats.received:
            self._jitter_series.observe(return_path.receive_stats.jitter_seconds)



def _flush_counts(current: Counter[str], reported: Counter[str], series: Callable[[str], Any]) -> None:
    for key, value in current.items():
        if value != reported[key]:
            series(key).inc(value - reported[key])
            reported[key] = value
