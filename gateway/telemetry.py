"""Turns each call's plain counters into Prometheus metrics, as deltas, once a second and at hangup.

Counting per call and flushing periodically keeps metric updates (a lock and an mmap write each, in
multiprocess mode) off the per-frame path.
"""

from __future__ import annotations

from collections import Counter

from prometheus_client import Counter as MetricCounter

from gateway import metrics
from gateway.session import CallSession, CallState

_TRAFFIC = (
    ("ws_frames_in", metrics.WS_FRAMES.labels("in")),
    ("ws_frames_out", metrics.WS_FRAMES.labels("out")),
    ("ws_bytes_in", metrics.WS_BYTES.labels("in")),
    ("ws_bytes_out", metrics.WS_BYTES.labels("out")),
    ("rtp_packets_in", metrics.RTP_PACKETS.labels("in")),
    ("rtp_packets_out", metrics.RTP_PACKETS.labels("out")),
    ("rtp_bytes_in", metrics.RTP_BYTES.labels("in")),
    ("rtp_bytes_out", metrics.RTP_BYTES.labels("out")),
    ("return_queue_dropped_bytes", metrics.RETURN_QUEUE_DROPPED),
)


class CallTelemetry:
    """What one call has already reported, so each flush adds only what is new."""

    def __init__(self) -> None:
        self._reported: dict[str, int] = dict.fromkeys((name for name, _ in _TRAFFIC), 0)
        self._dropped: Counter[str] = Counter()
        self._ignored: Counter[str] = Counter()
        self._lost = 0
        self._reordered = 0
        self.kernel_drops = 0

    def flush(self, session: CallSession) -> None:
        counters = session.counters
        reported = self._reported
        for name, metric in _TRAFFIC:
            value = getattr(counters, name)
            if value != reported[name]:
                metric.inc(value - reported[name])
                reported[name] = value
        _flush_labelled(counters.rtp_dropped, self._dropped, metrics.RTP_DROPPED)
        _flush_labelled(counters.ignored_commands, self._ignored, metrics.COMMANDS_IGNORED)
        if session.format is None:
            return
        lost, reordered = session.jitter_buffer.lost_packets, session.receive_stats.reordered
        if lost != self._lost:
            metrics.RTP_LOST.inc(lost - self._lost)
            self._lost = lost
        if reordered != self._reordered:
            metrics.RTP_REORDERED.inc(reordered - self._reordered)
            self._reordered = reordered
        if session.state is CallState.ANSWERED and session.receive_stats.received:
            metrics.RTP_JITTER.observe(session.receive_stats.jitter_seconds)


def _flush_labelled(current: Counter[str], reported: Counter[str], metric: MetricCounter) -> None:
    for label, value in current.items():
        if value != reported[label]:
            metric.labels(label).inc(value - reported[label])
            reported[label] = value
