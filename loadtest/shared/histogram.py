"""A compact log-linear latency histogram (HDR-style) that merges exactly.

Values are integer microseconds. Below 64 µs every value has its own bucket; above, each power of two is
split into 32 buckets, so a bucket is at most 1/32 (3.1 %) wide relative to its value. Counts are plain
integers per bucket, so merging histograms from several processes or machines is a sum and percentiles
recomputed from the merged counts are exactly those of the combined data (to bucket resolution).
"""

from __future__ import annotations

import math
from typing import Any

SUB_BITS = 5
SUB_BUCKETS = 1 << SUB_BITS  # 32 buckets per power of two
LINEAR_LIMIT = 2 * SUB_BUCKETS  # values below 64 µs are exact
MAX_VALUE_BITS = 40  # ~12.7 days in µs: anything larger is clamped
MAX_VALUE = (1 << MAX_VALUE_BITS) - 1
BUCKETS = (MAX_VALUE_BITS - SUB_BITS + 1) * SUB_BUCKETS  # bucket_of(MAX_VALUE) + 1
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}
SCHEMA = f"log-linear/us/sub{SUB_BITS}"


def bucket_of(value: int) -> int:
    """Bucket index of a value in µs (shift = how many low bits the bucket ignores)."""
    if value < LINEAR_LIMIT:
        return value if value > 0 else 0
    if value > MAX_VALUE:
        value = MAX_VALUE
    shift = value.bit_length() - SUB_BITS - 1
    return shift * SUB_BUCKETS + (value >> shift)


def bucket_bounds(index: int) -> tuple[int, int]:
    """[low, high) of a bucket in µs."""
    if index < LINEAR_LIMIT:
        return index, index + 1
    shift = index // SUB_BUCKETS - 1
    low = (index - shift * SUB_BUCKETS) << shift
    return low, low + (1 << shift)


class Histogram:
    """Counts per bucket plus exact count, sum, min and max. `record` is on the per-frame hot path."""

    __slots__ = ("count", "counts", "max", "min", "total")

    def __init__(self) -> None:
        self.counts = [0] * BUCKETS
        self.count = 0
        self.total = 0
        self.min = MAX_VALUE
        self.max = 0

    def record(self, value_us: int) -> None:
        if value_us < 0:
            value_us = 0
        self.counts[bucket_of(value_us)] += 1
        self.count += 1
        self.total += value_us
        if value_us > self.max:
            self.max = value_us
        if value_us < self.min:
            self.min = value_us

    def merge(self, other: Histogram) -> Histogram:
        counts = self.counts
        for index, n in enumerate(other.counts):
            if n:
                counts[index] += n
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)
        self.min = min(self.min, other.min)
        return self

    def percentile(self, pct: float) -> float | None:
        """Value in µs at or below which `pct` % of the recorded values lie (the bucket's midpoint,
        clamped to the exact min/max). None when empty."""
        if not self.count:
            return None
        rank = max(1, math.ceil(pct * self.count / 100 - 1e-9))  # nearest rank
        seen = 0
        for index, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                low, high = bucket_bounds(index)
                mid = (low + high - 1) / 2
                return float(min(max(mid, self.min), self.max))
        return float(self.max)

    def summary_ms(self) -> dict[str, Any]:
        """Percentiles, mean and max in milliseconds, plus the compact histogram for exact merging."""
        summary: dict[str, Any] = {"count": self.count}
        for name, pct in PERCENTILES.items():
            value = self.percentile(pct)
            summary[name] = None if value is None else round(value / 1000, 3)
        summary["mean"] = round(self.total / self.count / 1000, 3) if self.count else None
        summary["min"] = round(self.min / 1000, 3) if self.count else None
        summary["max"] = round(self.max / 1000, 3) if self.count else None
        summary["histogram"] = self.to_json()
        return summary

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "count": self.count, "sum_us": self.total,
            "min_us": self.min if self.count else None, "max_us": self.max,
            "buckets": [[index, n] for index, n in enumerate(self.counts) if n],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Histogram:
        histogram = cls()
        if not data:
            return histogram
        if data.get("schema") != SCHEMA:
            raise ValueError(f"histogram schema {data.get('schema')!r}, expected {SCHEMA!r}")
        for index, n in data["buckets"]:
            histogram.counts[index] += n
        histogram.count = data["count"]
        histogram.total = data["sum_us"]
        histogram.max = data["max_us"]
        histogram.min = data["min_us"] if data["min_us"] is not None else MAX_VALUE
        return histogram


def since(later: Histogram, earlier: Histogram) -> Histogram:
    """What was recorded between two snapshots of one cumulative histogram (min/max are not known for the
    interval, so percentiles are bucket midpoints)."""
    interval = Histogram()
    interval.counts = [a - b for a, b in zip(later.counts, earlier.counts, strict=True)]
    interval.count = later.count - earlier.count
    interval.total = later.total - earlier.total
    interval.min = 0
    interval.max = later.max
    return interval
