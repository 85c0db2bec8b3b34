"""`loadtest compare A B`: every figure's change, regressions flagged by the figure's better direction."""

import pytest

from loadtest.cli import EXIT_FAILED, EXIT_OK, main
from loadtest.report.build import build_report
from loadtest.report.compare import compare
from loadtest.report.output import write_outputs
from tests.loadtest.report.synthetic import synthetic_run

TOLERANCE = 0.10


@pytest.fixture(scope="module")
def reports():
    fast = build_report(synthetic_run("a", 10, [1000] * 900, lost=0))
    slow = build_report(synthetic_run("b", 10, [1300] * 900, lost=9))  # 30 % slower, loss from zero
    return fast, slow


def by_figure(changes) -> dict:
    return {change.figure: change for change in changes}


def test_figures_that_got_worse_are_regressions_and_the_rest_are_shown(reports):
    fast, slow = reports
    changes = by_figure(compare(fast, slow, TOLERANCE))
    assert changes["latency_ms.round_trip.p50"].relative == pytest.approx(0.3, abs=0.04)
    assert changes["latency_ms.round_trip.p50"].regression
    assert changes["loss_ratio"].regression  # from zero: any loss is worse
    assert not changes["frames.sent"].regression  # no better direction: shown, never flagged
    assert not changes["latency_ms.round_trip.count"].regression
    assert "timeline" not in " ".join(changes)  # per-second rows and raw histograms are not figures
    assert not any(change.regression for change in compare(slow, fast, TOLERANCE))  # improvements are not


def test_a_change_within_the_tolerance_is_not_a_regression(reports):
    fast, slow = reports
    assert not by_figure(compare(fast, slow, 0.5))["latency_ms.round_trip.p50"].regression


def test_the_command_prints_every_change_and_fails_on_a_regression(reports, tmp_path, capsys):
    fast, slow = reports
    write_outputs(fast, tmp_path / "a", plots=False)
    write_outputs(slow, tmp_path / "b", plots=False)
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == EXIT_FAILED
    output = capsys.readouterr().out
    line = next(line for line in output.splitlines() if line.startswith("latency_ms.round_trip.p99 "))
    assert "REGRESSION" in line and "+30" in line
    assert "gateway.cpu_ms_per_call_second" in output
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "a")]) == EXIT_OK
