"""A fleet on this machine, from real parts: Debian's HAProxy (TCP mode, round robin, health checks on /readyz)
in front of three gateways on 127.0.0.2-4 that share Debian's redis-server as their replay store; all started and
stopped here. Calls spread over the instances and echo bit-exact; a token is used once across the fleet; a
rolling restart under steady calls loses no call and no frame; with the store down, fail_closed holds, and calls
are answered again once it is back."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import websockets

from gateway.core import tokens
from tests.aio import run
from tests.e2e.test_replay_store import CREDENTIALS
from tests.gateway_process import GatewayProcess
from tests.haproxy import HAProxy
from tests.redis_server import RedisServer
from tests.sinch_client import SinchCall, refused_after_upgrade, sine

HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
CALL_SECONDS = 1.0  # each steady call's audio, paced at real time
CALL_EVERY = 0.2  # seconds between steady calls' starts: about five calls in flight
TOKEN_KEY = CREDENTIALS["GATEWAY_TOKEN_KEY"]
# Three gateways, HAProxy, Redis and the calls share CI's two cores: a claim may wait on the CPU far longer than
# on Redis, and the default 0.25 s would count that as the store not answering.
STORE_TIMEOUT = "2"


class Fleet:
    def __init__(self, redis: RedisServer, folder: os.PathLike) -> None:
        self.args = ("--replay-store", redis.url, "--replay-store-timeout", STORE_TIMEOUT, "--drain-timeout", "10")
        with ThreadPoolExecutor(len(HOSTS)) as pool:
            self.gateways = list(pool.map(lambda host: self._start(host=host), HOSTS))
        self.retired: list[GatewayProcess] = []  # instances a rolling restart replaced
        self.haproxy = HAProxy(self.gateways, folder).start()

    def _start(self, **where: object) -> GatewayProcess:
        return GatewayProcess(*self.args, env=CREDENTIALS, **where).start()

    def restart(self, index: int) -> None:
        """One step of a rolling restart, as Kubernetes does it: the preStop hook's SIGUSR2 takes the instance
        out of the load balancer's rotation (its /readyz fails) while it still takes calls; then SIGTERM drains
        it; then it starts again and is back in rotation."""
        gateway = self.gateways[index]
        mark = len(self.haproxy.lines)
        gateway.proc.send_signal(signal.SIGUSR2)
        mark = self.haproxy.wait_for(HAProxy.went_down(index), mark)
        assert gateway.stop() == 0  # SIGTERM: its calls finish, then it exits
        self.retired.append(gateway)
        self.gateways[index] = self._start(ports_of=gateway)
        self.haproxy.wait_for(HAProxy.went_up(index), mark)

    def stop(self) -> None:
        self.haproxy.stop()
        for gateway in self.gateways:
            gateway.stop()


@pytest.fixture(scope="module")
def redis():
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fleet(redis, tmp_path_factory):
    fleet = Fleet(redis, tmp_path_factory.mktemp("fleet"))
    yield fleet
    fleet.stop()


def stream_path(call_id: str) -> str:
    token = tokens.issue(TOKEN_KEY, call_id, "echo", 8000, int(time.time()) + 60)
    return f"/stream/echo?token={token}"


async def echoed_call(url: str, call_id: str, seconds: float, freq: float) -> str:
    """A call as Sinch makes it (20 ms frames at real time); its audio must come back bit-exact."""
    call = await SinchCall.open(url + stream_path(call_id))
    assert await call.connect(call_id, rate=None) == {"command": "answer"}
    pcm = sine(8000, seconds, freq=freq)
    await asyncio.gather(call.send_paced(pcm, 8000), call.receive_audio(len(pcm)))
    assert bytes(call.audio[:len(pcm)]) == pcm, f"{call_id}: audio lost or changed"
    await call.ws.close()
    return call_id


def answered_on(gateway: GatewayProcess) -> set[str]:
    return {event["call_id"] for event in gateway.events if event.get("event") == "call.answered"}


def test_calls_spread_over_the_instances_and_echo_bit_exact(fleet):
    async def scenario() -> list[str]:
        return await asyncio.gather(*(echoed_call(fleet.haproxy.url, f"spread-{n}", 0.4, 300 + 50 * n)
                                      for n in range(6)))

    calls = set(run(scenario()))
    for gateway in fleet.gateways:
        assert answered_on(gateway) & calls, f"no call reached {gateway.host}"


def test_a_token_used_through_one_instance_is_refused_through_another(fleet):
    first, second = fleet.gateways[0], fleet.gateways[1]
    path = stream_path("once")

    async def scenario() -> None:
        call = await SinchCall.open(first.url + path)
        assert await call.connect("once", rate=None) == {"command": "answer"}
        await call.ws.close()
        assert await refused_after_upgrade(second.url + path) == (1008, "replayed token")
        assert await refused_after_upgrade(fleet.haproxy.url + path) == (1008, "replayed token")

    run(scenario())


def test_a_rolling_restart_under_steady_calls_loses_no_call_and_no_frame(fleet):
    async def scenario() -> list[str]:
        done = asyncio.Event()

        async def steady_calls() -> list[str]:
            calls, count = [], 0
            while not done.is_set():
                calls.append(asyncio.create_task(
                    echoed_call(fleet.haproxy.url, f"roll-{count}", CALL_SECONDS, 200 + 10 * count)))
                count += 1
                await asyncio.sleep(CALL_EVERY)  # the load's rate, not a wait for anything
            return await asyncio.gather(*calls)

        load = asyncio.create_task(steady_calls())
        for index in range(len(HOSTS)):
            await asyncio.to_thread(fleet.restart, index)
        done.set()
        return await load

    calls = run(scenario())  # any call refused, cut or with audio lost or changed raised here
    assert len(calls) >= 10
    drained = [gateway.wait_for("worker.draining")["calls"] for gateway in fleet.retired]
    assert sum(drained) > 0, "no call was in progress on an instance as it drained"
    for index in range(len(HOSTS)):  # new calls reached every instance, restarted ones included
        assert answered_on(fleet.gateways[index]) & set(calls) or answered_on(fleet.retired[index]) & set(calls)


def test_with_the_store_down_fail_closed_holds_and_calls_are_answered_once_it_is_back(fleet, redis):
    async def refused(url: str, call_id: str) -> int:
        """A call refused for the store: at the upgrade (503), or right after it (1013)."""
        try:
            code, reason = await refused_after_upgrade(url + stream_path(call_id))
        except websockets.InvalidStatus as exc:
            return exc.response.status_code
        assert reason == "replay store unavailable"
        return code

    redis.stop()
    try:
        # One call to each instance, straight to it: through the load balancer, an instance whose health check
        # failed once under load would be out of rotation and never learn of the store's outage.
        for n, gateway in enumerate(fleet.gateways):
            assert run(refused(gateway.url, f"down-{n}")) in (503, 1013)
        for gateway in fleet.gateways:
            gateway.wait_for("replay_store.unavailable", process="worker")
        assert run(refused(fleet.haproxy.url, "down-again")) == 503  # every instance knows now: refused at once
    finally:
        redis.start()
    for gateway in fleet.gateways:
        gateway.wait_for("replay_store.available", process="worker")

    async def back() -> list[str]:
        return await asyncio.gather(*(echoed_call(fleet.haproxy.url, f"back-{n}", 0.2, 500) for n in range(3)))

    assert len(run(back())) == 3
