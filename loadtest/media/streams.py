"""Per-SSRC receive bookkeeping for the media simulators, sans-IO: sequence continuity, timestamp steps,
and the upstream latency carried by the frame markers."""

from __future__ import annotations

from typing import Any

from loadtest.shared import marker
from loadtest.shared.histogram import Histogram

G711_PAYLOAD_TYPES = (0, 8)  # RFC 3551 table 4: PCMU, PCMA, one byte per sample


class StreamStats:
    """One RTP stream (SSRC) as the media service sees it."""

    __slots__ = (
        "bytes", "cname", "duplicates", "ended", "first_arrival_ns", "gaps", "jitter", "last_arrival_ns",
        "last_samples", "last_seq", "last_timestamp", "last_transit", "marked", "missing", "packets",
        "payload_bytes", "payload_type", "reordered", "source", "ssrc", "timestamp_errors",
    )

    def __init__(self, ssrc: int, source: tuple[str, int], payload_type: int, arrival_ns: int) -> None:
        self.ssrc = ssrc
        self.source = source
        self.payload_type = payload_type
        self.cname: str | None = None
        self.first_arrival_ns = arrival_ns
        self.last_arrival_ns = arrival_ns
        self.packets = 0
        self.bytes = 0
        self.payload_bytes = 0
        self.last_seq = -1
        self.last_timestamp = 0
        self.last_samples = 0
        self.gaps = 0  # times the sequence jumped forward by more than one
        self.missing = 0  # packets skipped by those jumps
        self.duplicates = 0
        self.reordered = 0  # packets older than the newest one: arrived after a gap was counted
        self.timestamp_errors = 0  # RTP timestamp step not equal to the samples of the packets in between
        self.marked = 0
        self.last_transit = -1
        self.jitter = 0.0
        self.ended = False

    def on_packet(self, seq: int, timestamp: int, payload: bytes | memoryview, arrival_ns: int,
                  upstream: Histogram) -> None:
        self.packets += 1
        self.bytes += len(payload) + 12
        self.payload_bytes = len(payload)
        self.last_arrival_ns = arrival_ns
        samples = len(payload) // (1 if self.payload_type in G711_PAYLOAD_TYPES else 2)
        if self.last_seq < 0:
            self._advance(seq, timestamp, samples)
        else:
            step = ((seq - self.last_seq + 0x8000) & 0xFFFF) - 0x8000  # RFC 1982 distance
            if step <= 0:
                if step == 0:
                    self.duplicates += 1
                else:
                    self.reordered += 1
                return
            if step > 1:
                self.gaps += 1
                self.missing += step - 1
            # Packets of one stream have one size here, so the skipped ones had `samples` samples too.
            expected = (self.last_timestamp + self.last_samples + (step - 1) * samples) & 0xFFFFFFFF
            if timestamp != expected:
                self.timestamp_errors += 1
            self._advance(seq, timestamp, samples)
        found = marker.read_be(payload)
        if found is not None:
            transit = marker.elapsed_us(arrival_ns // 1000, found.sent_us)
            upstream.record(transit)
            self.marked += 1
            if self.last_transit >= 0:  # RFC 3550 A.8 on the marker's send time
                self.jitter += (abs(transit - self.last_transit) - self.jitter) / 16
            self.last_transit = transit

    def _advance(self, seq: int, timestamp: int, samples: int) -> None:
        self.last_seq = seq
        self.last_timestamp = timestamp
        self.last_samples = samples

    @property
    def lost(self) -> int:
        return max(0, self.missing - self.reordered)


def summarize(streams: list[StreamStats], upstream: Histogram, extra: dict[str, Any]) -> dict[str, Any]:
    """Totals over streams, plus the streams that were not clean (capped, for the report)."""
    jitter = Histogram()
    for stream in streams:
        if stream.marked > 1:
            jitter.record(round(stream.jitter))
    unclean = [
        {"ssrc": s.ssrc, "cname": s.cname, "packets": s.packets, "lost": s.lost, "gaps": s.gaps,
         "duplicates": s.duplicates, "reordered": s.reordered, "timestamp_errors": s.timestamp_errors}
        for s in streams if s.gaps or s.duplicates or s.reordered or s.timestamp_errors
    ]
    return {
        "streams": len(streams),
        "streams_with_cname": sum(1 for s in streams if s.cname),
        "streams_ended_by_bye": sum(1 for s in streams if s.ended),
        "packets": sum(s.packets for s in streams),
        "bytes": sum(s.bytes for s in streams),
        "lost": sum(s.lost for s in streams),
        "gaps": sum(s.gaps for s in streams),
        "duplicates": sum(s.duplicates for s in streams),
        "reordered": sum(s.reordered for s in streams),
        "timestamp_errors": sum(s.timestamp_errors for s in streams),
        "upstream_ms": upstream.summary_ms(),
        "upstream_jitter_ms": jitter.summary_ms(),
        "unclean_streams": unclean[:20],
        **extra,
    }
