"""The allocation webhook (allocate_url): asked once per call for its HOST:PORT, its answer used, and the
route's own target when it is slow, fails or answers nonsense."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from aiohttp import web

from tests.aio import run
from tests.e2e.test_ffmpeg_interop import udp_ports_of
from tests.gateway_process import GatewayProcess, scrape, value
from tests.media_peer import MediaPeer
from tests.ports import free_port
from tests.sinch_client import SinchCall, sine

RATE = 16000


class Allocator:
    """An allocation webhook on loopback: answers each call by its id from `answers` (a dict, or "hang" to
    never answer), the calls in `held` only once `release` is set, and keeps every request (`asked` is set
    at the first)."""

    def __init__(self, answers: dict[str, object], held: frozenset[str] = frozenset()) -> None:
        self.answers = answers
        self.held = held
        self.requests: list[dict] = []
        self.asked = asyncio.Event()
        self.release = asyncio.Event()
        self._never = asyncio.Event()

    async def start(self) -> Allocator:
        async def allocate(request: web.Request) -> web.Response:
            body = json.loads(await request.read())
            self.requests.append(body)
            self.asked.set()
            answer = self.answers[body["call_id"]]
            if answer == "hang":
                await self._never.wait()
            if body["call_id"] in self.held:
                await self.release.wait()
            return web.json_response(answer)

        app = web.Application()
        app.router.add_post("/allocate", allocate)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/allocate"
        return self

    async def close(self) -> None:
        self._never.set()  # a hanging answer ends: cleanup waits for every handler
        await self._runner.cleanup()


@contextlib.asynccontextmanager
async def allocating(call_ids: tuple[str, ...], *options: str, held: frozenset[str] = frozenset()) -> AsyncIterator[
        tuple[MediaPeer, MediaPeer, Allocator, GatewayProcess]]:
    """Route `pool` to its own media peer, and a webhook that allocates `call_ids` to another peer; all stopped
    after."""
    own, allocated = await MediaPeer().start(), await MediaPeer().start()
    webhook = await Allocator({call_id: {"target": f"localhost:{allocated.port}"} for call_id in call_ids},
                              held).start()
    gateway = await asyncio.to_thread(GatewayProcess(
        "--route", own.route("pool"), "--allocate-url", webhook.url, *options).start)
    try:
        yield own, allocated, webhook, gateway
    finally:
        gateway.stop()
        await webhook.close()
        own.close()
        allocated.close()


async def talk(gateway: GatewayProcess, call_id: str) -> None:
    """A call on route `pool` that sends half a second of audio, then hangs up once the gateway ended it."""
    call = await SinchCall.open(gateway.url + "/stream/pool")
    assert await call.connect(call_id, rate=RATE, callHeaders={"tenant": "acme"}) == {"command": "answer"}
    await call.send_paced(sine(RATE, 0.5), RATE)
    await call.ws.close()
    await asyncio.to_thread(gateway.wait_for, "call.ended", call_id=call_id)


def test_each_call_goes_where_the_webhook_says():
    async def scenario() -> None:
        async with allocating(("first", "second")) as (own, allocated, webhook, gateway):
            for call_id in ("first", "second"):
                await talk(gateway, call_id)
            assert webhook.requests == [{"call_id": call_id, "route": "pool", "headers": {"tenant": "acme"}}
                                        for call_id in ("first", "second")]  # once per call
            await allocated.wait_until(lambda: len(allocated.packets) == 50)  # both calls' RTP went there
            assert len({packet.ssrc for packet in allocated.packets}) == 2 and not own.packets
            answered = gateway.wait_for("call.answered", call_id="second")
            assert answered["target"] == f"localhost:{allocated.port}"
            assert value(scrape(gateway), "gateway_allocations_total", route="pool", outcome="allocated") == 2

    run(scenario())


def test_a_slow_or_nonsense_answer_falls_back_to_the_routes_own_target():
    async def scenario() -> None:
        own = await MediaPeer().start()
        webhook = await Allocator({"slow": "hang", "nonsense": {"target": "no port"}}).start()
        gateway = await asyncio.to_thread(GatewayProcess(
            "--route", own.route("pool"), "--allocate-url", webhook.url, "--allocate-timeout", "0.3").start)
        try:
            for call_id in ("slow", "nonsense"):
                await talk(gateway, call_id)
            assert [request["call_id"] for request in webhook.requests] == ["slow", "nonsense"]
            await own.wait_until(lambda: len(own.packets) == 50)
            assert len({packet.ssrc for packet in own.packets}) == 2
            failed = [gateway.wait_for("call.allocation_failed", call_id=call_id) for call_id in ("slow", "nonsense")]
            assert [event["reason"] for event in failed] == ["timeout", "bad_answer"]
            samples = scrape(gateway)
            assert [value(samples, "gateway_allocations_total", route="pool", outcome=outcome)
                    for outcome in ("allocated", "timeout", "bad_answer")] == [0, 1, 1]
        finally:
            gateway.stop()
            await webhook.close()
            own.close()

    run(scenario())


def test_a_call_that_ends_while_its_webhook_is_asked_leaves_nothing_behind():
    """Sinch hangs up while the webhook still holds its answer: the call ends at the route's own target, its
    question is withdrawn (counted and logged as abandoned, never as allocated), and the answer released after
    starts nothing (no call, no RTP to it) and keeps nothing (no socket, no count)."""
    async def scenario() -> None:
        async with allocating(("late",), "--allocate-timeout", "5", held=frozenset({"late"})) as (
                own, allocated, webhook, gateway):
            worker = gateway.wait_for("worker.listening")["pid"]
            idle_sockets = udp_ports_of(worker)
            call = await SinchCall.open(gateway.url + "/stream/pool")
            assert await call.connect("late", rate=RATE) == {"command": "answer"}
            await asyncio.wait_for(webhook.asked.wait(), 5)
            await call.send_paced(sine(RATE, 0.2), RATE)
            await call.ws.close()  # Sinch hangs up; the webhook has not answered
            await asyncio.to_thread(gateway.wait_for, "call.ended", call_id="late")
            await asyncio.to_thread(gateway.wait_for, "call.allocation_abandoned", call_id="late")
            webhook.release.set()
            answered = [event for event in gateway.events
                        if event.get("event") == "call.answered" and event.get("call_id") == "late"]
            assert [event["target"] for event in answered] == [f"127.0.0.1:{own.port}"]
            await own.wait_until(lambda: len(own.packets) == 10)  # its audio, held meanwhile, went there at the end
            assert not allocated.packets
            assert udp_ports_of(worker) == idle_sockets  # the call's RTP and RTCP sockets are closed
            samples = scrape(gateway)
            assert value(samples, "gateway_calls_active", route="pool") == 0
            assert value(samples, "gateway_target_calls", route="pool", target=f"127.0.0.1:{own.port}") == 0
            assert value(samples, "gateway_allocations_total", route="pool", outcome="abandoned") == 1
            assert value(samples, "gateway_allocations_total", route="pool", outcome="allocated") == 0
            assert not [event for event in gateway.events if event.get("event") == "call.allocated"]
            assert not [key for key, count in samples.items() if key[0] == "gateway_internal_errors_total" and count]
            assert not [event for event in gateway.events if event.get("level") == "error"]

    run(scenario())
