from pathlib import Path

import pytest

from loadtest.shared.scenario import ScenarioError, load_scenario, plan_calls

SCENARIOS = Path(__file__).parents[3] / "loadtest" / "scenarios"


@pytest.mark.parametrize("name", ["steady", "ramp", "churn", "soak"])
def test_shipped_scenarios_parse_and_plan(name):
    scenario = load_scenario(str(SCENARIOS / f"{name}.toml"))
    assert scenario.name == name
    plans = plan_calls(scenario)
    assert plans
    assert all(0 <= plan.start < scenario.duration for plan in plans)
    assert all(plan.start + plan.seconds <= scenario.duration + 1e-9 for plan in plans)


def test_flags_override_the_file(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('name = "x"\ncalls = 7\nrate = [8000, 48000]\n[churn_duration]\nmean = 3.0\n')
    scenario = load_scenario(str(path), {"calls": 9, "url": None})
    assert (scenario.name, scenario.calls, scenario.rates) == ("x", 9, [8000, 48000])
    assert scenario.churn_duration.mean == 3.0
    assert [plan.rate for plan in plan_calls(scenario)[:3]] == [8000, 48000, 8000]


def test_ramp_spaces_the_long_calls():
    scenario = load_scenario(None, {"calls": 5, "ramp": 10.0, "duration": 4.0})
    plans = plan_calls(scenario)
    assert [plan.start for plan in plans] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert [plan.start + plan.seconds for plan in plans] == pytest.approx([4.0] * 5)


def test_churn_is_poisson_with_the_asked_duration_and_reproducible():
    overrides = {"calls": 0, "churn_rate": 50.0, "duration": 200.0,
                 "churn_duration": {"distribution": "exponential", "mean": 2.0, "min": 0.0, "max": 100.0}}
    plans = plan_calls(load_scenario(None, overrides))
    assert len(plans) == pytest.approx(50 * 200, rel=0.05)
    assert sum(p.seconds for p in plans) / len(plans) == pytest.approx(2.0, rel=0.06)
    assert plans == plan_calls(load_scenario(None, overrides))
    assert plans != plan_calls(load_scenario(None, {**overrides, "seed": 2}))


def test_media_hangup_is_requested_in_the_call_id():
    plans = plan_calls(load_scenario(None, {"calls": 20, "media": "echo", "media_hangup": 0.5}))
    by_media = [plan for plan in plans if plan.media_hangup]
    assert 0 < len(by_media) < 20
    assert by_media[0].call_id("r1").endswith(f"~bye={round(by_media[0].seconds * 1000)}")
    assert "~bye" not in next(p for p in plans if not p.media_hangup).call_id("r1")


@pytest.mark.parametrize(("overrides", "message"), [
    ({"rate": 11025}, "rate"),
    ({"calls": -1}, "calls"),
    ({"url": "http://x/stream/echo"}, "url"),
    ({"media_hangup": 0.5}, "media_hangup"),
    ({"calls": 0, "churn_rate": 0.0}, "no load"),
    ({"bogus": 1}, "bogus"),
    ({"churn_duration": {"distribution": "weibull"}}, r"churn_duration\.distribution"),
])
def test_invalid_scenarios_name_the_key(overrides, message):
    with pytest.raises(ScenarioError, match=message):
        load_scenario(None, overrides)


def test_missing_file_is_a_scenario_error(tmp_path):
    with pytest.raises(ScenarioError, match=r"nope\.toml"):
        load_scenario(str(tmp_path / "nope.toml"))
