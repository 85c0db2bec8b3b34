import random

import pytest

from loadtest.shared.histogram import BUCKETS, MAX_VALUE, Histogram, bucket_bounds, bucket_of, since


def exact_percentile(values: list[int], pct: float) -> int:
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def test_buckets_are_contiguous_and_narrow():
    previous_high = 0
    for index in range(BUCKETS):
        low, high = bucket_bounds(index)
        assert low == previous_high
        assert bucket_of(low) == index
        assert bucket_of(high - 1) == index
        assert (high - low) <= max(1, low / 32)  # 3.1 % relative width
        previous_high = high
    assert bucket_of(MAX_VALUE) == bucket_of(10 * MAX_VALUE) == BUCKETS - 1  # clamped, not out of range


@pytest.mark.parametrize("pct", [50, 90, 99, 99.9])
def test_percentiles_within_bucket_resolution(pct):
    rng = random.Random(7)
    values = [int(rng.lognormvariate(7, 1.2)) for _ in range(20000)]
    histogram = Histogram()
    for value in values:
        histogram.record(value)
    expected = exact_percentile(values, pct)
    assert histogram.percentile(pct) == pytest.approx(expected, rel=0.035, abs=1)
    assert histogram.max == max(values)
    assert histogram.min == min(values)


def test_merge_is_exactly_the_histogram_of_all_values():
    rng = random.Random(3)
    parts = [[rng.randrange(0, 10**6) for _ in range(n)] for n in (500, 3000, 1)]
    merged = Histogram()
    for part in parts:
        histogram = Histogram()
        for value in part:
            histogram.record(value)
        merged.merge(Histogram.from_json(histogram.to_json()))  # through JSON, as `merge` does
    together = Histogram()
    for value in (v for part in parts for v in part):
        together.record(value)
    assert merged.counts == together.counts
    assert (merged.count, merged.total, merged.min, merged.max) == (together.count, together.total,
                                                                    together.min, together.max)
    for pct in (50, 99, 99.9):
        assert merged.percentile(pct) == together.percentile(pct)


def test_interval_between_snapshots():
    histogram = Histogram()
    for value in (100, 200):
        histogram.record(value)
    earlier = Histogram.from_json(histogram.to_json())
    for value in (5000, 5000, 5000):
        histogram.record(value)
    interval = since(histogram, earlier)
    assert interval.count == 3
    assert interval.percentile(50) == pytest.approx(5000, rel=0.02)


def test_empty_histogram_summary():
    summary = Histogram().summary_ms()
    assert summary["count"] == 0
    assert summary["p99"] is None
    assert Histogram.from_json(summary["histogram"]).count == 0


def test_rejects_other_schema():
    with pytest.raises(ValueError, match="schema"):
        Histogram.from_json({"schema": "other", "buckets": []})
