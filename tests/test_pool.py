"""A route's targets, sans-IO (gateway.core.pool): which target a call goes to, by policy and health."""

from gateway.core.pool import PoolTarget, TargetPool


def pool(policy: str, count: int = 3) -> TargetPool:
    return TargetPool(policy, [PoolTarget(f"10.0.0.{index}:5004", (f"10.0.0.{index}", 5004)) for index in range(count)])


def names(picked: list[PoolTarget | None]) -> list[str | None]:
    return [target.address[0][-1] if target else None for target in picked]


def test_round_robin_takes_each_target_in_turn_and_skips_those_down():
    targets = pool("round_robin")
    assert names([targets.pick() for _ in range(4)]) == ["0", "1", "2", "0"]
    targets.targets[2].up = False
    assert names([targets.pick() for _ in range(3)]) == ["1", "0", "1"]


def test_least_calls_takes_the_target_with_fewest_calls_first_listed_among_equals():
    targets = pool("least_calls")
    first, second, third = targets.targets
    first.calls.update({"a", "b"})
    second.calls.add("c")
    assert targets.pick() is third
    third.calls.update({"d", "e"})
    assert targets.pick() is second
    second.up = False
    assert targets.pick() is first


def test_a_failover_goes_only_to_another_target_up_a_new_call_anywhere_when_none_is():
    targets = pool("round_robin", 2)
    first, second = targets.targets
    first.up = False
    assert targets.pick(avoid=first) is second
    second.up = False
    assert targets.pick(avoid=first) is None  # a moving call stays where it is
    assert targets.pick() in (first, second)  # a new call still goes somewhere: a mark can be stale
