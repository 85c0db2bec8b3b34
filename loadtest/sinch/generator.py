"""One load generator process: many calls on one uvloop loop, driven by ONE shared timer.

The timer fires `phases` times per 20 ms; each firing serves one slot of calls (a call's slot is fixed at
answer), so independent calls' frames are spread over the 20 ms like real callers' rather than sent in one
burst. The same firing starts planned calls, enforces answer timeouts and reports progress to the parent.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import time
from multiprocessing.connection import Connection
from typing import Any

import uvloop

from loadtest.shared.audio import VOICES, AudioSource, speech_loop
from loadtest.shared.procs import watch_parent
from loadtest.shared.scenario import CallPlan, Scenario
from loadtest.sinch.call import FRAME_NS, Call
from loadtest.sinch.stats import LoadStats

PROGRESS_NS = 1_000_000_000
FAR_BEHIND_NS = 100_000_000  # past this the timer jumps to now instead of replaying every missed firing
SHUTDOWN_GRACE_S = 5.0  # past the last call's planned end (+ drain, + connect timeout): stop anyway


def generator_process(conn: Connection, scenario: Scenario, plans: list[CallPlan], run_id: str, index: int) -> None:
    """multiprocessing target: run the plans, report progress and the final stats over `conn`."""
    uvloop.run(Generator(conn, scenario, plans, run_id, index).run())


class Generator:
    def __init__(self, conn: Connection, scenario: Scenario, plans: list[CallPlan], run_id: str, index: int) -> None:
        self.conn = conn
        self.scenario = scenario
        self.plans = plans
        self.run_id = run_id
        self.stats = LoadStats()
        self.audio = AudioSource()
        self.rng = random.Random(scenario.seed * 1009 + index)
        self.phases = scenario.phases
        self.tick_ns = FRAME_NS // scenario.phases
        self.slots: list[dict[int, Call]] = [{} for _ in range(scenario.phases)]
        self.pending: dict[int, Call] = {}  # connecting or awaiting the answer
        self.tasks: set[asyncio.Task[None]] = set()
        self.next_plan = 0
        self.t0 = 0
        self._next_progress = 0
        self._messages: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self._interrupted = False
        self._finished: asyncio.Future[None]

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for rate in {plan.rate for plan in self.plans}:
            for voice in range(VOICES):
                speech_loop(rate, voice)  # compute the audio before the clock starts
        watch_parent(loop, self.conn, self._on_parent_message)
        self._finished = loop.create_future()
        gc.freeze()  # keep start-up objects (audio, modules) out of the collector's full passes during the run
        self.conn.send(("ready",))
        command, self.t0 = await self._messages.get()
        assert command == "start"
        last_end = max((plan.start + plan.seconds for plan in self.plans), default=0.0)
        self._hard_end = self.t0 + round((last_end + self.scenario.drain + self.scenario.connect_timeout
                                          + SHUTDOWN_GRACE_S) * 1e9)
        self._next_progress = self.t0 + PROGRESS_NS
        self._schedule(0)
        if self.plans:
            await self._finished
        loop.remove_reader(self.conn.fileno())
        self.stats.cpu_seconds = _own_cpu_seconds()
        self.conn.send(("done", self.stats.to_dict()))

    def _on_parent_message(self) -> None:
        try:
            message = self.conn.recv()
        except EOFError:  # the parent is gone
            message = ("stop",)
        if message[0] == "stop":  # the run was interrupted
            self._interrupted = True
            self._hard_end = 0  # the next firing aborts what is left
        else:
            self._messages.put_nowait(message)

    def _schedule(self, k: int) -> None:
        loop = asyncio.get_running_loop()
        target = self.t0 + k * self.tick_ns
        loop.call_at(loop.time() + (target - time.monotonic_ns()) / 1e9, self._tick, k, target)

    def _tick(self, k: int, scheduled: int) -> None:
        now = time.monotonic_ns()
        self.stats.tick_lag.record((now - scheduled) // 1000)
        for call in tuple(self.slots[k % self.phases].values()):
            call.tick(now)
        self._start_due_calls(now)
        if k % self.phases == 0:
            for call in tuple(self.pending.values()):
                call.check_answer_timeout(now)
            if now >= self._next_progress:
                self._next_progress += PROGRESS_NS
                self.conn.send(("progress", self._progress()))
        if now >= self._hard_end:
            self._abort()
        if self._finished.done():
            return
        if now - scheduled > FAR_BEHIND_NS:  # calls catch up on their own (Call._send_due)
            k = (now - self.t0) // self.tick_ns
        self._schedule(k + 1)

    def _start_due_calls(self, now: int) -> None:
        plans = self.plans
        while self.next_plan < len(plans) and self.t0 + plans[self.next_plan].start * 1e9 <= now:
            plan = plans[self.next_plan]
            self.next_plan += 1
            call = Call(self, plan, plan.call_id(self.run_id), plan.index, now, self.rng.randrange(1000))
            self.pending[plan.index] = call
            self.stats.calls_attempted += 1
            task = asyncio.get_running_loop().create_task(call.open())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def call_answered(self, call: Call, now: int) -> None:
        """Give the call its timer slot; its audio starts at that slot's next firing."""
        self.pending.pop(call.plan.index, None)
        slot = call.plan.index % self.phases
        k = -(-(now - self.t0) // self.tick_ns)
        k += (slot - k) % self.phases
        call.slot = slot
        call.audio_start_ns = self.t0 + k * self.tick_ns
        self.slots[slot][call.plan.index] = call

    def call_done(self, call: Call) -> None:
        self.pending.pop(call.plan.index, None)
        self.slots[call.slot].pop(call.plan.index, None)
        all_done = self.next_plan == len(self.plans) and not self.pending and not any(self.slots)
        if all_done and not self._finished.done():
            self._finished.set_result(None)

    def _abort(self) -> None:
        """Told to stop (interrupted), or past the hard end: then whatever is still open failed to finish."""
        self.next_plan = len(self.plans)
        for call in [*self.pending.values(), *(c for slot in self.slots for c in slot.values())]:
            call.abort(self._interrupted)
        if not self._finished.done():
            self._finished.set_result(None)

    def _progress(self) -> dict[str, Any]:
        stats = self.stats
        return {
            "active": stats.active, "attempted": stats.calls_attempted, "answered": stats.calls_answered,
            "failed": stats.calls_failed, "frames_sent": stats.frames_sent, "frames_received": stats.frames_received,
            "frames_lost": stats.frames_lost, "round_trip": stats.round_trip.to_json(),
            "tick_lag_max_us": stats.tick_lag.max,
        }


def _own_cpu_seconds() -> float:
    with open(f"/proc/{os.getpid()}/stat") as file:
        fields = file.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
