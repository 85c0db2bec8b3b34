"""The allocation webhook (allocate_url): asked once per call for its HOST:PORT, its answer used, and the
route's own target when it is slow, fails or answers nonsense."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from tests.aio import run
from tests.gateway_process import GatewayProcess, scrape, value
from tests.media_peer import MediaPeer
from tests.ports import free_port
from tests.sinch_client import SinchCall, sine

RATE = 16000


class Allocator:
    """An allocation webhook on loopback: answers each call by its id from `answers` (a dict, or "hang" to
    never answer) and keeps every request."""

    def __init__(self, answers: dict[str, object]) -> None:
        self.answers = answers
        self.requests: list[dict] = []
        self._never = asyncio.Event()

    async def start(self) -> Allocator:
        async def allocate(request: web.Request) -> web.Response:
            body = json.loads(await request.read())
            self.requests.append(body)
            answer = self.answers[body["call_id"]]
            if answer == "hang":
                await self._never.wait()
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


async def talk(gateway: GatewayProcess, call_id: str) -> None:
    """A call on route `pool` that sends half a second of audio, then hangs up once the gateway ended it."""
    call = await SinchCall.open(gateway.url + "/stream/pool")
    assert await call.connect(call_id, rate=RATE, callHeaders={"tenant": "acme"}) == {"command": "answer"}
    await call.send_paced(sine(RATE, 0.5), RATE)
    await call.ws.close()
    await asyncio.to_thread(gateway.wait_for, "call.ended", call_id=call_id)


def test_each_call_goes_where_the_webhook_says():
    async def scenario() -> None:
        own, allocated = await MediaPeer().start(), await MediaPeer().start()
        webhook = await Allocator({call_id: {"target": f"localhost:{allocated.port}"}
                                   for call_id in ("first", "second")}).start()
        gateway = await asyncio.to_thread(GatewayProcess(
            "--route", own.route("pool"), "--allocate-url", webhook.url).start)
        try:
            for call_id in ("first", "second"):
                await talk(gateway, call_id)
            assert webhook.requests == [{"call_id": call_id, "route": "pool", "headers": {"tenant": "acme"}}
                                        for call_id in ("first", "second")]  # once per call
            await allocated.wait_until(lambda: len(allocated.packets) == 50)  # both calls' RTP went there
            assert len({packet.ssrc for packet in allocated.packets}) == 2 and not own.packets
            answered = gateway.wait_for("call.answered", call_id="second")
            assert answered["target"] == f"localhost:{allocated.port}"
            assert value(scrape(gateway), "gateway_allocations_total", route="pool", outcome="allocated") == 2
        finally:
            gateway.stop()
            await webhook.close()
            own.close()
            allocated.close()

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
