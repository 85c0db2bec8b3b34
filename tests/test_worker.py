"""The worker's own decisions: admission, what it imports, when its timer comes."""
import asyncio

from gateway.dataplane.worker import Worker
from gateway.shared.config import Config, Route
from gateway.shared.replay import ReplayGuard
from gateway.shared.scoreboard import Scoreboard
from tests.test_worker_faults import Running, until, with_worker

ASR = Route(name="asr", host="127.0.0.1", port=5004)


def worker(**config) -> Worker:
    return Worker(Config(routes={"asr": ASR}, **config), 0, Scoreboard(), ReplayGuard(capacity=16))


def test_admission_by_calls_and_by_cpu():
    call = object()  # the call being admitted: looked at only while its token is claimed in a fleet's store
    calls = worker(max_calls=2)
    assert calls.admit(call)
    calls.answered_calls = 2
    assert not calls.admit(call)
    cpu = worker(max_cpu_percent=80)
    cpu.cpu_percent = 79.0
    assert cpu.admit(call)
    cpu.cpu_percent = 80.0
    assert not cpu.admit(call)
    assert worker().admit(call)  # no caps configured


def test_a_worker_without_call_events_does_not_import_aiohttp():
    """aiohttp loads the system's CA certificates at import: a fifth of a second of CPU, and memory, per worker."""
    import subprocess
    import sys

    code = "import sys, gateway.dataplane.worker; print('aiohttp' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "False"



def test_the_timer_waits_for_the_deadline_tick_until_a_call_waits_on_the_clock():
    """With no call's audio waiting on the clock the worker's timer comes every slow tick (10 tick intervals);
    a call that starts waiting (Worker.pace) brings it within one tick interval."""
    async def scenario(running: Running) -> None:
        await running.call("waits")
        worker, loop = running.worker, asyncio.get_running_loop()
        interval = worker.config.tick_interval
        await until(lambda: not worker.pacing and worker._tick_timer.at > loop.time() + 2 * interval,
                    "the timer armed for the deadline tick")
        worker.pace(running.adapter("waits"))
        assert worker._tick_timer.at <= loop.time() + interval
        assert running.adapter("waits") in worker.pacing

    with_worker(scenario)


def test_a_call_can_start_waiting_while_the_timer_is_due_at_once():
    """uvloop's call_at for a time not in the future returns a plain Handle, which has no when(): pace() must go
    by the time the timer was armed for (asking the handle closed calls with 1011 in a failover under load)."""
    async def scenario(running: Running) -> None:
        await running.call("due")
        worker = running.worker
        worker._tick_timer.arm(asyncio.get_running_loop().time())  # due at once: under uvloop, a plain Handle
        worker.pace(running.adapter("due"))
        assert running.adapter("due") in worker.pacing
        await running.keeps_beating()

    with_worker(scenario)


def test_a_second_drain_after_one_with_no_time_left_keeps_the_first_deadline():
    """drain_timeout may be 0: its deadline is due at once (a plain Handle under uvloop); a second SIGTERM then
    compares against the time it was set for, and the call is closed by the first."""
    async def scenario(running: Running) -> None:
        call = await running.call("draining")
        running.worker.drain(True, 0.0)
        running.worker.drain(True, 0.0)  # asked the handle for its time, this raised
        assert (await call.closed())[0] == 1001

    with_worker(scenario)
