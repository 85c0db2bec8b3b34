"""Issue 17: the real gateway started with a low open-files limit, its calls and its refusals near the limit."""

from __future__ import annotations

import asyncio
import socket

import pytest
import websockets

from tests.e2e.test_hostile_peers import wait_for_metric
from tests.gateway_process import GatewayProcess, scrape, value
from tests.sinch_client import SinchCall, sine

RATE = 8000
CLK_TCK = 100  # /proc/PID/stat counts CPU time in ticks of 1/100 s on Linux


def run(coro):
    return asyncio.run(coro)


async def open_calls(gateway: GatewayProcess, count: int, prefix: str) -> list[SinchCall]:
    async def one(index: int) -> SinchCall:
        call = await SinchCall.open(gateway.url + "/stream/echo")
        assert await call.connect(f"{prefix}-{index}", rate=RATE) == {"command": "answer"}
        return call
    return list(await asyncio.gather(*(one(index) for index in range(count))))


async def echoes_bit_exact(call: SinchCall) -> None:
    pcm = sine(RATE, 0.1, freq=500)
    call.audio.clear()
    await call.ws.send(pcm)
    assert await call.receive_audio(len(pcm)) == pcm


async def declined_status(gateway: GatewayProcess) -> int:
    with pytest.raises(websockets.InvalidStatus) as info:
        await SinchCall.open(gateway.url + "/stream/echo")
    return info.value.response.status_code


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def test_a_soft_limit_of_256_is_raised_to_the_hard_limit_and_150_calls_are_answered():
    gateway = GatewayProcess(open_files=(256, 4096)).start()
    try:
        limits = gateway.wait_for("supervisor.host_limits")
        assert (limits["open_files"], limits["open_files_raised_from"]) == (4096, 256)
        assert gateway.wait_for("worker.listening")["open_files"] == 4096

        async def scenario() -> None:
            calls = await open_calls(gateway, 150, "raised")
            await asyncio.gather(*(echoes_bit_exact(call) for call in calls[::15]))
            await asyncio.gather(*(call.ws.close() for call in calls))

        run(scenario())
    finally:
        assert gateway.stop() == 0


def test_out_of_descriptors_upgrades_get_503_no_fds_and_the_calls_in_progress_go_on():
    gateway = GatewayProcess(open_files=(256, 256)).start()

    async def scenario(capacity: int) -> None:
        calls = await open_calls(gateway, capacity, "held")
        assert [await declined_status(gateway) for _ in range(5)] == [503] * 5  # never a 500
        await wait_for_metric(gateway, "gateway_upgrades_declined_total", 5, reason="no_fds")
        assert value(await asyncio.to_thread(scrape, gateway), "gateway_upgrades_declined_total",
                     reason="internal_error") == 0
        await asyncio.gather(*(echoes_bit_exact(call) for call in calls))
        for call in calls[:3]:
            await call.ws.close()
        await asyncio.to_thread(gateway.wait_count, "call.ended", 3)
        [again] = await open_calls(gateway, 1, "again")
        await echoes_bit_exact(again)
        await asyncio.gather(*(call.ws.close() for call in (*calls[3:], again)))

    try:
        listening = gateway.wait_for("worker.listening")
        capacity = listening["calls_by_descriptors"]
        assert capacity == listening["calls_capacity"]
        assert 40 <= capacity <= (256 - listening["descriptors_at_idle"]) // 3
        run(scenario(capacity))
        declined = [e for e in gateway.events if e.get("event") == "upgrade.declined"]
        assert declined and all(e["reason"] == "no_fds" and e["status"] == 503 for e in declined)
        assert len(declined) < 5  # rate-limited: a line a second at most, saying how many were held back
    finally:
        assert gateway.stop() == 0


def test_an_accept_out_of_descriptors_pauses_without_spinning_and_accepting_resumes():
    """Connections that never upgrade take every descriptor: accept() fails with EMFILE. aiofastnet alone spins
    on it at 100 % CPU, logging two tracebacks a round; the worker pauses accepting and takes up again."""
    gateway = GatewayProcess(open_files=(256, 256)).start()

    async def a_call_is_answered() -> None:
        [call] = await open_calls(gateway, 1, "after")
        await echoes_bit_exact(call)
        await call.ws.close()

    try:
        worker = gateway.wait_for("worker.listening")["pid"]
        idle = [socket.create_connection(("127.0.0.1", gateway.port)) for _ in range(256)]
        try:
            gateway.wait_for("worker.accept_paused")
            before = cpu_seconds(worker)
            # Three more tries, a quarter of a second apart, each finding no descriptor and pausing again.
            paused = value(scrape(gateway), "gateway_accepts_paused_total")
            run(wait_for_metric(gateway, "gateway_accepts_paused_total", paused + 3))
            assert cpu_seconds(worker) - before < 0.3  # spinning would have used all of the 0.75 s
            assert not [line for line in gateway.raw_lines if "out of system resource" in line]
        finally:
            for connection in idle:
                connection.close()
        run(a_call_is_answered())
    finally:
        assert gateway.stop() == 0
