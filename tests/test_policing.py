from gateway.core.policing import UpstreamBudget

SECOND = 32000  # bytes of 16 kHz L16


def test_real_time_audio_always_passes_and_a_burst_after_a_stall_too():
    budget = UpstreamBudget(SECOND, speed=4.0, burst_seconds=2.0, now=0.0)
    frame = SECOND // 50
    assert all(budget.take(frame, index * 0.02) for index in range(500))  # 10 s at real time
    assert all(budget.take(frame, 12.0) for _ in range(100))  # a 2 s stall, then its audio at once


def test_a_flood_is_refused_past_the_burst_and_the_budget_refills_at_the_speed_limit():
    budget = UpstreamBudget(SECOND, speed=4.0, burst_seconds=2.0, now=0.0)
    frame = SECOND // 50
    passed = sum(budget.take(frame, 0.0) for _ in range(1000))
    assert passed == 100  # the 2 s burst, then nothing
    assert not budget.take(frame, 0.0)
    assert sum(budget.take(frame, 0.25) for _ in range(1000)) == 50  # a quarter second later: 1 s of audio (4x)
    assert sum(budget.take(frame, 10.0) for _ in range(1000)) == 100  # never more in hand than the burst


def test_a_speed_of_zero_lets_everything_through():
    budget = UpstreamBudget(SECOND, speed=0.0, burst_seconds=2.0, now=0.0)
    assert all(budget.take(SECOND, 0.0) for _ in range(100))
