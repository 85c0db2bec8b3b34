"""A synthetic run (no sockets) with known figures, for the report's tests."""

from loadtest.runner.run import RunResult
from loadtest.shared.histogram import Histogram
from loadtest.shared.procstat import Usage
from loadtest.shared.scenario import load_scenario
from loadtest.sinch.stats import LoadStats

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
         "gateway_rss_bytes": 100 * 2**20 + calls * 40 * 1024, "gateway_pss_mib": 61.0,
         "gateway_pss_bytes": 60 * 2**20 + calls * 30 * 1024}
        for t in (*range(11), 10.3)  # a row a second, then the last, partial one as the runner adds it
    ]
    samples = [Usage(T0, 5.0, 100 * 2**20, 3, 60 * 2**20),
               Usage(T0 + 10 * SECOND, 6.0, 100 * 2**20 + calls * 40960, 3, 60 * 2**20 + calls * 30720)]
    upstream = Histogram()
    upstream.record(300)
    media = {"kind": "echo", "port": 40100, "streams": calls, "streams_with_cname": calls, "streams_ended_by_bye": 0,
             "packets": 1000, "bytes": 652000, "lost": 0, "gaps": 0, "duplicates": 0, "reordered": 0,
             "timestamp_errors": 0, "talked": 0, "echoed": 1000, "malformed": 0, "rtcp_packets": calls,
             "byes_received": calls, "byes_sent": 0, "upstream_ms": upstream.summary_ms(),
             "upstream_jitter_ms": Histogram().summary_ms(), "unclean_streams": []}
    scenario = load_scenario(None, {"calls": calls, "gateway_pid": 1234, "media": "echo"})
    return RunResult(scenario, run_id, unix, T0, 10.0, stats, timeline, samples, media, 1.0)
