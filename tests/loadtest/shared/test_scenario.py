from pathlib import Path

import pytest

from loadtest.shared.scenario import ScenarioError, load_scenario, plan_calls

SCENARIOS = Path(__file__).parents[3] / "loadtest" / "scenarios"


@pytest.mark.parametrize("name", ["steady", "ramp", "churn", "soak", "failover"])
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
    ({"media": "echo", "media_listen": "127.0.0.1:40100,nope"}, "media_listen: expected HOST:PORT"),
    ({"media": "echo", "kill_target_at": 1.0}, "kill_target_at: needs a media simulator with two targets"),
    ({"media": "echo", "media_listen": "127.0.0.1:40100,127.0.0.1:40102", "kill_target_at": 20.0},
     "kill_target_at: 20 s is not within"),
    ({"restart_target_at": 2.0}, "restart_target_at: needs a kill_target_at before it"),
    ({"metrics_url": "127.0.0.1:9100"}, "metrics_url"),
    ({"thresholds": {"min_failovers": 1}}, "thresholds.min_failovers: needs metrics_url"),
])
def test_invalid_scenarios_name_the_key(overrides, message):
    with pytest.raises(ScenarioError, match=message):
        load_scenario(None, overrides)


def test_missing_file_is_a_scenario_error(tmp_path):
    with pytest.raises(ScenarioError, match=r"nope\.toml"):
        load_scenario(str(tmp_path / "nope.toml"))


def test_thresholds_come_from_the_file_and_flags_update_them_key_by_key(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text("sample_rate = 8000\n[thresholds]\nmax_loss = 0.01\nmin_answered = 0.9\n"
                    "[churn_duration]\ndistribution = \"fixed\"\nmean = 3.0\n")
    scenario = load_scenario(str(path), {"thresholds": {"max_loss": 0.5, "max_rtt_p99_ms": None},
                                         "churn_duration": {"mean": 4.0}})
    assert (scenario.thresholds.max_loss, scenario.thresholds.min_answered) == (0.5, 0.9)
    assert scenario.thresholds.max_rtt_p99_ms is None
    assert (scenario.churn_duration.distribution, scenario.churn_duration.mean) == ("fixed", 4.0)
    assert scenario.rates == [8000]  # `sample_rate`: the clearer name of `rate`


@pytest.mark.parametrize(("text", "message"), [
    ("[thresholds]\nmax_lost = 0.1\n", "max_lost"),
    ("[thresholds]\nmax_failed = 2\n", r"thresholds\.max_failed"),
    ("gateway_pid = 0\n[thresholds]\nmax_pss_per_call_kib = 100\n", "max_pss_per_call_kib: needs gateway_pid"),
    ("[thresholds]\nmax_upstream_p99_ms = 5\n", "max_upstream_p99_ms: needs a media simulator"),
    ('media = "sink"\n[thresholds]\nmax_rtt_p99_ms = 5\n', "max_rtt_p99_ms: needs an echo route"),
    ("rate = 8000\nsample_rate = 8000\n", "not both"),
])
def test_invalid_thresholds_name_the_key(tmp_path, text, message):
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=message):
        load_scenario(str(path))
