"""The plots' contents, read from the matplotlib figures before they are saved."""

import copy
import math

import pytest

from loadtest.report.build import build_report
from loadtest.report.merge import merge_reports
from loadtest.report.plots import latency_figure, timeline_figure, write_plots
from tests.loadtest.report.synthetic import synthetic_run

pytest.importorskip("matplotlib")  # the `loadtest` extra


@pytest.fixture(scope="module")
def report():
    return build_report(synthetic_run("a1b2c3", 10, [1000] * 90 + [5000] * 10, lost=0))


def without_gateway(report: dict) -> dict:
    stripped = copy.deepcopy(report)
    stripped["timeline"] = [{k: v for k, v in row.items() if not k.startswith("gateway_")}
                            for row in stripped["timeline"]]
    stripped["gateway"] = None
    return stripped


def labels(figure) -> list[str]:
    return [ax.get_ylabel() for ax in figure.axes]


def test_plots_carry_the_runs_title_url_and_time(report):
    for figure in (latency_figure(report), timeline_figure(report)):
        text = figure.get_suptitle()
        assert "adhoc (a1b2c3)" in text and report["scenario"]["url"] in text and report["started_at"] in text


def test_linear_axes_start_at_zero(report):
    figure = timeline_figure(report)
    assert all(ax.get_ylim()[0] == 0 for ax in figure.axes)
    percentiles = latency_figure(report).axes[1]
    assert percentiles.get_ylim()[0] == 0


def test_gateway_cpu_and_memory_over_time_only_when_measured(report):
    measured = timeline_figure(report)
    assert any("CPU" in label for label in labels(measured))
    memory = next(ax for ax in measured.axes if ax.get_ylabel() == "gateway memory (MiB)")
    assert [line.get_label().split()[0] for line in memory.lines] == ["PSS", "RSS"]
    assert list(memory.lines[0].get_ydata())[:2] == [61.0, 61.0]
    unmeasured = timeline_figure(without_gateway(report))
    assert not any("CPU" in label or "memory" in label for label in labels(unmeasured))
    assert "CPU" not in unmeasured.axes[0].get_title()


def test_a_gap_between_merged_runs_breaks_the_line_instead_of_bridging_it(report):
    later = build_report(synthetic_run("d4e5f6", 4, [1000] * 100, lost=0, unix=1_700_000_300.0))
    calls = timeline_figure(merge_reports([report, later])).axes[0].lines[0]
    values = list(calls.get_ydata())
    assert sum(math.isnan(value) for value in values) == 1
    assert values[values.index(next(v for v in values if math.isnan(v))) + 1] == 4  # then the later run


def test_pngs_are_written(report, tmp_path):
    assert write_plots(report, tmp_path) == ["latency.png", "timeline.png"]
    assert (tmp_path / "timeline.png").stat().st_size > 0
