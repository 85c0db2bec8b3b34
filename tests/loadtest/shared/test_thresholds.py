"""Judging thresholds against a report: bounds either way, a figure not measured never holds."""

from loadtest.shared.thresholds import Thresholds, judge, verdict_line


def report(answered: int = 9, attempted: int = 10, rtt_p99: float | None = 4.0, pss: int | None = None) -> dict:
    return {"calls": {"attempted": attempted, "answered": answered, "failed": attempted - answered},
            "loss_ratio": 0.02, "latency_ms": {"round_trip": {"p99": rtt_p99}},
            "gateway": {"pss_per_call_bytes": pss} if pss is not None else None}


def by_name(verdicts: list[dict]) -> dict[str, dict]:
    return {verdict["name"]: verdict for verdict in verdicts}


def test_upper_and_lower_bounds():
    verdicts = by_name(judge(Thresholds(max_loss=0.01, min_answered=0.9, max_failed=0.05, max_rtt_p99_ms=4.0),
                             report()))
    assert {name: verdict["held"] for name, verdict in verdicts.items()} == {
        "max_loss": False, "min_answered": True, "max_failed": False, "max_rtt_p99_ms": True}
    assert verdicts["min_answered"]["value"] == 0.9
    assert verdict_line(verdicts["max_loss"]) == "threshold max_loss <= 0.01: 0.02 FAILED"


def test_a_figure_not_measured_does_not_hold():
    verdicts = by_name(judge(Thresholds(max_rtt_p99_ms=50.0, max_pss_per_call_kib=100.0), report(rtt_p99=None)))
    assert not verdicts["max_rtt_p99_ms"]["held"]
    assert not verdicts["max_pss_per_call_kib"]["held"]
    assert verdict_line(verdicts["max_rtt_p99_ms"]).endswith("not measured FAILED")


def test_memory_per_call_is_judged_in_kib():
    verdicts = by_name(judge(Thresholds(max_pss_per_call_kib=40.0), report(pss=40 * 1024)))
    assert verdicts["max_pss_per_call_kib"]["value"] == 40.0
    assert verdicts["max_pss_per_call_kib"]["held"]


def test_without_min_answered_a_run_with_no_answered_call_fails():
    assert by_name(judge(Thresholds(), report(answered=0)))["any_answered"]["held"] is False
    assert by_name(judge(Thresholds(), report(answered=1)))["any_answered"]["held"] is True
    assert "any_answered" not in by_name(judge(Thresholds(min_answered=0.0), report(answered=0)))
