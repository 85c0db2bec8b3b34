"""Merging reports: counts summed, percentiles recomputed from the histograms."""

import json

import pytest

from loadtest.report.build import build_report
from loadtest.report.merge import merge_reports
from tests.loadtest.report.synthetic import synthetic_run


def test_merge_sums_counts_and_recomputes_percentiles_from_histograms():
    fast = build_report(synthetic_run("a", 10, [1000] * 900, lost=0))
    slow = build_report(synthetic_run("b", 30, [20000] * 100, lost=100))
    merged = merge_reports([json.loads(json.dumps(fast)), json.loads(json.dumps(slow))])
    assert merged["runs"] == ["a", "b"]
    assert merged["calls"]["attempted"] == 40
    assert merged["frames"]["sent"] == fast["frames"]["sent"] + slow["frames"]["sent"]
    assert merged["loss_ratio"] == pytest.approx(100 / 1100)
    rtt = merged["latency_ms"]["round_trip"]
    assert rtt["count"] == 1000
    assert rtt["p50"] == pytest.approx(1.0, rel=0.02)  # 900 of 1000 samples are 1 ms ...
    assert rtt["p99"] == pytest.approx(20.0, rel=0.02)  # ... the rest 20 ms: neither input's own p99
    assert merged["calls"]["max_concurrent"] == 40  # timelines aligned on wall-clock seconds
    assert merged["gateway"]["call_seconds"] == pytest.approx(400.0)
    assert merged["media"]["packets"] == 2000


def test_merge_rejects_other_files():
    with pytest.raises(ValueError, match="report"):
        merge_reports([{"schema": "something-else"}])
