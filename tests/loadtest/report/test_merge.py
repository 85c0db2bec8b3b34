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


def test_merging_one_report_changes_no_figure():
    report = json.loads(json.dumps(build_report(synthetic_run("a", 10, [1000] * 100, lost=0))))
    merged = merge_reports([report])
    assert merged["calls"]["max_concurrent"] == report["calls"]["max_concurrent"] == 10  # the partial last row
    assert merged["gateway"]["rss_per_call_bytes"] == report["gateway"]["rss_per_call_bytes"]  # counts once
    assert merged["gateway"]["pss_per_call_bytes"] == report["gateway"]["pss_per_call_bytes"] == 30 * 1024
    assert merged["calls"]["attempted"] == report["calls"]["attempted"]
    assert merged["timeline"][-1]["attempted"] == 10


def test_runs_apart_in_time_leave_a_gap_and_keep_their_totals():
    first = build_report(synthetic_run("a", 10, [1000] * 100, lost=0, unix=1_700_000_000.0))
    later = build_report(synthetic_run("b", 4, [1000] * 100, lost=0, unix=1_700_000_300.0))
    timeline = merge_reports([first, later])["timeline"]
    assert [row["t"] for row in timeline] == [*range(11), *range(300, 311)]  # no row in between to draw across
    assert (timeline[10]["active"], timeline[11]["active"]) == (10, 4)  # the first run was over by then
    assert timeline[11]["attempted"] == 14  # its calls still count in the totals
