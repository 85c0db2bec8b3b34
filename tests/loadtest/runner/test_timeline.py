"""The live progress line: elapsed of the planned total, a bar, the last second's figures."""

from loadtest.runner.timeline import progress_line

ROW = {"t": 5.0, "active": 10, "attempted": 12, "answered": 11, "failed": 1, "frames_sent": 2500,
       "frames_received": 2490, "frames_lost": 3, "rtt_p50_ms": 1.2, "rtt_p99_ms": 3.4}


def test_elapsed_of_the_total_with_a_bar_and_the_live_figures():
    line = progress_line(ROW, 20.0)
    assert line.startswith("[   5.0/20.0 s #####...............  25%] ")
    assert "answered 11/12 failed 1" in line and "lost 3" in line and "rtt p50 1.2 p99 3.4 ms" in line
    assert "gateway" not in line  # not measured without --gateway-pid


def test_the_gateways_cpu_and_memory_when_measured_and_a_full_bar_past_the_plan():
    row = {**ROW, "t": 21.0, "gateway_cpu_pct": 12.5, "gateway_rss_mib": 120.0, "gateway_pss_mib": 80.0}
    line = progress_line(row, 20.0)
    assert "#" * 20 + " 100%]" in line
    assert line.endswith("| gateway cpu 12.5% rss 120.0 MiB pss 80.0 MiB")
