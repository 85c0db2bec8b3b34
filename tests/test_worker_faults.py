"""A failure in one call's code, or in one periodic task, never stops the worker (issue 9.1).

A worker runs in this process on uvloop with real sockets, so faults can be injected where no outside peer can
reach; each test shows the worker keeps beating and other calls keep echoing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
import uvloop

from gateway.dataplane import worker as worker_module
from gateway.dataplane.worker import HOUSEKEEPING_INTERVAL, Worker
from gateway.shared import metrics
from gateway.shared.config import Config
from gateway.shared.replay import ReplayGuard
from gateway.shared.scoreboard import Scoreboard, WorkerState
from tests.sinch_client import SinchCall, sine

RATE = 8000
DEADLINE = 10.0


class Boom(RuntimeError):
    pass


def boom(*_args, **_kwargs) -> None:
    raise Boom("injected")


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Wait for a condition the worker's loop brings about (it runs in this same loop)."""
    deadline = time.monotonic() + DEADLINE
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def errors(where: str) -> float:
    return metrics.INTERNAL_ERRORS.labels(where)._value.get()


class Running:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.url = f"ws://127.0.0.1:{worker._server.sockets[0].getsockname()[1]}/stream/echo"

    async def call(self, call_id: str) -> SinchCall:
        call = await SinchCall.open(self.url)
        assert await call.connect(call_id, rate=RATE) == {"command": "answer"}
        return call

    def adapter(self, call_id: str):
        return next(call for call in self.worker.calls if call.session.call_id == call_id)

    async def keeps_beating(self) -> None:
        """Two more heartbeats after now: the housekeeping timer is still armed."""
        since = time.monotonic() + HOUSEKEEPING_INTERVAL
        await until(lambda: self.worker.scoreboard.read(0)[2] > since, "two more heartbeats")
        assert self.worker.scoreboard.read(0)[1] is WorkerState.SERVING


async def echoes(call: SinchCall) -> None:
    pcm = sine(RATE, 0.2, freq=700)
    call.audio.clear()
    await call.ws.send(pcm)
    assert await call.receive_audio(len(pcm)) == pcm


def with_worker(scenario: Callable[[Running], Awaitable[None]]) -> None:
    async def main() -> None:
        worker = Worker(Config(listen="127.0.0.1:0", rtp_host="127.0.0.1"), 0, Scoreboard(), ReplayGuard(16))
        task = asyncio.get_running_loop().create_task(worker.run())
        await until(lambda: worker.state is WorkerState.SERVING, "the worker to serve")
        try:
            await scenario(Running(worker))
        finally:
            worker.stop_now()
            await asyncio.wait_for(task, DEADLINE)

    uvloop.run(main())


def test_a_call_whose_tick_raises_is_closed_with_1011_and_the_others_go_on():
    async def scenario(running: Running) -> None:
        healthy, broken = await running.call("healthy"), await running.call("broken")
        before = errors("tick")
        running.adapter("broken").session.config = None  # its next tick raises (compiled: no method to patch)
        assert await broken.closed() == (1011, "internal error")
        assert errors("tick") == before + 1
        await running.keeps_beating()
        await echoes(healthy)

    with_worker(scenario)


def test_a_call_whose_metrics_flush_raises_is_closed_with_1011_and_the_others_go_on():
    async def scenario(running: Running) -> None:
        healthy, broken = await running.call("healthy"), await running.call("broken")
        running.adapter("broken").telemetry._series = None  # its next flush raises
        assert await broken.closed() == (1011, "internal error")
        await running.keeps_beating()
        await echoes(healthy)
        assert len(running.worker.calls) == 1  # the broken call was given back despite its failing flush

    with_worker(scenario)


@pytest.mark.parametrize(("where", "target", "attribute"), [
    ("metrics", metrics.RETURN_QUEUE, "set"),  # the worker-wide part of the metrics flush
    ("timer", worker_module, "udp_sockets"),  # the kernel-drop count, from /proc
    ("tick", metrics.LOOP_LAG, "observe"),  # the shared tick itself
])
def test_a_periodic_task_that_raises_costs_one_round_not_the_worker(monkeypatch, where, target, attribute):
    monkeypatch.setattr(worker_module, "UDP_TABLE_EVERY", 1)

    async def scenario(running: Running) -> None:
        call = await running.call("survivor")
        before = errors(where)
        monkeypatch.setattr(target, attribute, boom)
        await until(lambda: errors(where) >= before + 2, f"{where} to fail twice (its timer was re-armed)")
        monkeypatch.undo()
        await running.keeps_beating()
        await echoes(call)

    with_worker(scenario)
