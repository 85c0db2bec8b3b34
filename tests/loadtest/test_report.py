"""report.json from a synthetic run (no sockets): the contract keys, the derived figures, and merging."""

import json

import pytest

from loadtest.histogram import Histogram
from loadtest.output import read_report, write_outputs
from loadtest.procstat import Usage
from loadtest.report import build_report, merge_reports
from loadtest.runner import RunResult
from loadtest.scenario import load_scenario
from loadtest.stats import LoadStats

SECOND = 1_000_000_000
T0 = 50 * SECOND


def synthetic_run(run_id: str, calls: int, rtts_us: list[int], lost: int, unix: float = 1_700_000_000.0):
    stats = LoadStats()
    stats.calls_attempted = stats.calls_answered = stats.calls_completed = calls
    stats.frames_sent = stats.frames_received = len(rtts_us) + lost
    stats.frames_marked = len(rtts_us)
    stats.frames_lost = lost
    stats.frames_received -= lost
    for rtt in rtts_us:
        stats.round_trip.record(rtt)
        stats.setup.record(rtt // 2)
        stats.tick_lag.record(100)
    stats.hangup_by["caller"] = calls
    stats.call_spans = [(T0, T0 + 10 * SECOND)] * calls  # every call up for 10 s
    timeline = [
        {"t": float(t), "unix": unix + t, "active": calls, "attempted": calls, "answered": calls, "failed": 0,
         "frames_sent": 0, "frames_received": 0, "frames_lost": 0, "rtt_p50_ms": 1.0, "rtt_p99_ms": 2.0,
         "gateway_cpu_pct": 10.0, "gateway_rss_mib": 101.0, "gateway_cpu_seconds": 0.1 * t,
         "gateway_rss_bytes": 100 * 2**20 + calls * 40 * 1024}
        for t in range(11)
    ]
    samples = [Usage(T0, 5.0, 100 * 2**20, 3), Usage(T0 + 10 * SECOND, 6.0, 100 * 2**20 + calls * 40960, 3)]
    upstream = Histogram()
    upstream.record(300)
    media = {"kind": "echo", "port": 40100, "streams": calls, "streams_with_cname": calls, "streams_ended_by_bye": 0,
             "packets": 1000, "bytes": 652000, "lost": 0, "gaps": 0, "duplicates": 0, "reordered": 0,
             "timestamp_errors": 0, "talked": 0, "echoed": 1000, "malformed": 0, "rtcp_packets": calls,
             "byes_received": calls, "byes_sent": 0, "upstream_ms": upstream.summary_ms(),
             "upstream_jitter_ms": Histogram().summary_ms(), "unclean_streams": []}
    scenario = load_scenario(None, {"calls": calls, "gateway_pid": 1234, "media": "echo"})
    return RunResult(scenario, run_id, unix, T0, 10.0, stats, timeline, samples, media, 1.0)


def test_report_has_the_contract_keys_and_derived_figures(tmp_path):
    report = build_report(synthetic_run("a", 10, [1000] * 90, lost=10))
    assert {"attempted", "answered", "failed"} <= set(report["calls"])
    assert {"sent", "received"} <= set(report["frames"])
    assert report["loss_ratio"] == pytest.approx(0.1)
    assert report["loss_method"] == "marker"
    assert report["latency_ms"]["round_trip"]["p50"] == pytest.approx(1.0, rel=0.02)
    assert report["latency_ms"]["upstream"]["p99"] == pytest.approx(0.3, rel=0.02)
    assert {"round_trip", "upstream"} <= set(report["jitter_ms"])
    gateway = report["gateway"]
    assert gateway["cpu_seconds"] == pytest.approx(1.0)
    assert gateway["call_seconds"] == pytest.approx(100.0)
    assert gateway["cpu_ms_per_call_second"] == pytest.approx(10.0)  # 1 CPU s over 10 calls x 10 s
    assert gateway["cpu_ms_per_call_second_steady"] == pytest.approx(10.0)
    assert gateway["rss_per_call_bytes"] == 40 * 1024
    json.dumps(report)  # all plain JSON
    write_outputs(report, tmp_path, plots=False)
    assert read_report(tmp_path) == json.loads(json.dumps(report))
    assert "10 ms CPU per call-second" in (tmp_path / "report.md").read_text()


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
