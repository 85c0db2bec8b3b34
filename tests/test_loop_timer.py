"""LoopTimer (gateway.dataplane.loop_timer): re-armed and brought forward by the time it was armed for, also when
that time is not in the future (uvloop then gives a plain Handle, without when())."""

import asyncio

import uvloop

from gateway.dataplane.loop_timer import LoopTimer


def test_it_fires_once_at_the_earliest_time_asked_and_passes_that_time():
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        fired: list[float] = []
        timer = LoopTimer(loop, fired.append)
        assert not timer.armed
        now = loop.time()
        timer.no_later_than(now + 10)
        timer.no_later_than(now + 20)  # later: kept as it was
        assert timer.at == now + 10
        timer.no_later_than(now - 1)  # not in the future: due at once, and still comparable
        assert timer.at == now - 1
        timer.no_later_than(now + 5)
        assert timer.armed and timer.at == now - 1
        await asyncio.sleep(0.05)
        return fired

    assert len(uvloop.run(main())) == 1  # the earlier handles were cancelled


def test_re_arming_replaces_the_time_it_is_due():
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        fired: list[float] = []
        timer = LoopTimer(loop, fired.append)
        timer.arm(loop.time() + 10)
        timer.arm(loop.time() + 0.01)
        await asyncio.sleep(0.1)
        return fired

    assert len(uvloop.run(main())) == 1
