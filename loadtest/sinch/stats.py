"""What one load generator process counts, in a form that sums across processes and machines."""

from __future__ import annotations

from collections import Counter
from typing import Any

from loadtest.shared.histogram import Histogram

COUNTERS = (
    "calls_attempted", "calls_answered", "calls_failed", "calls_completed", "calls_interrupted",
    "frames_sent", "frames_received", "frames_marked", "frames_unmarked", "frames_lost", "frames_duplicate",
    "frames_reordered", "frames_crossed", "frames_cut_at_hangup", "frames_skipped", "heartbeats",
    "media_hangup_missed",
)
HISTOGRAMS = ("setup", "round_trip", "jitter", "receive_gap", "tick_lag")
TALLIES = ("failed_by_reason", "hangup_by", "close_codes")


class LoadStats:
    """Counters, latency histograms (µs) and tallies of one generator; `merge` adds another one in."""

    def __init__(self) -> None:
        for name in COUNTERS:
            setattr(self, name, 0)
        self.setup = Histogram()  # connect command sent -> answer received
        self.round_trip = Histogram()  # frame sent -> the same frame back from the gateway
        self.jitter = Histogram()  # per call: RFC 3550 A.8 interarrival jitter of the returned frames
        self.receive_gap = Histogram()  # per call: the longest time between two frames from the gateway
        self.tick_lag = Histogram()  # how late the generator's shared timer fired: its own overload
        self.failed_by_reason: Counter[str] = Counter()
        self.hangup_by: Counter[str] = Counter()
        self.close_codes: Counter[str] = Counter()
        self.active = 0
        self.call_spans: list[tuple[int, int]] = []  # (answered, ended) monotonic ns, for call-seconds
        self.cpu_seconds = 0.0

    def fail(self, reason: str) -> None:
        self.calls_failed += 1
        self.failed_by_reason[reason] += 1

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {name: getattr(self, name) for name in COUNTERS}
        data.update({name: getattr(self, name).to_json() for name in HISTOGRAMS})
        data.update({name: dict(getattr(self, name)) for name in TALLIES})
        data["active"] = self.active
        data["call_spans"] = self.call_spans
        data["cpu_seconds"] = self.cpu_seconds
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadStats:
        stats = cls()
        for name in COUNTERS:
            setattr(stats, name, data[name])
        for name in HISTOGRAMS:
            setattr(stats, name, Histogram.from_json(data[name]))
        for name in TALLIES:
            setattr(stats, name, Counter(data[name]))
        stats.active = data["active"]
        stats.call_spans = [tuple(span) for span in data["call_spans"]]
        stats.cpu_seconds = data["cpu_seconds"]
        return stats

    def merge(self, other: LoadStats) -> LoadStats:
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in HISTOGRAMS:
            getattr(self, name).merge(getattr(other, name))
        for name in TALLIES:
            getattr(self, name).update(getattr(other, name))
        self.active += other.active
        self.call_spans.extend(other.call_spans)
        self.cpu_seconds += other.cpu_seconds
        return self
