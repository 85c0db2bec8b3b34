"""JSON call events posted to a media service's URL: what it learns of each call, and that a failing receiver
costs a counted failure, never the call."""

from __future__ import annotations

import asyncio
import json
import threading

from aiohttp import web

from tests.aio import run
from tests.gateway_process import GatewayProcess, scrape, value
from tests.ports import free_port
from tests.sinch_client import SinchCall, sine


class EventReceiver:
    """An HTTP endpoint on loopback that keeps every JSON body posted to it."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.arrived = threading.Condition()
        self._ready = threading.Event()

    def start(self) -> EventReceiver:
        threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True).start()
        self._ready.wait(10)
        return self

    async def _serve(self) -> None:
        async def receive(request: web.Request) -> web.Response:
            event = json.loads(await request.read())
            with self.arrived:
                self.events.append(event)
                self.arrived.notify_all()
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/events", receive)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/events"
        self._ready.set()
        await asyncio.Event().wait()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.events) >= count, timeout), self.events
            return list(self.events)


async def one_call(gateway: GatewayProcess, call_id: str) -> None:
    call = await SinchCall.open(gateway.url + "/stream/echo")
    assert await call.connect(call_id, rate=16000, callHeaders={"tenant": "acme"}) == {"command": "answer"}
    pcm = sine(16000, 0.1)
    await call.ws.send(pcm)
    assert await call.receive_audio(len(pcm)) == pcm
    await call.ws.close(1000, "caller hung up")


def test_started_and_ended_events_name_the_call():
    receiver = EventReceiver().start()
    gateway = GatewayProcess("--call-events-url", receiver.url, "--log-level", "debug").start()
    try:
        run(one_call(gateway, "evented"))
        started, ended = receiver.wait_for(2)
        answered = gateway.wait_for("call.answered", call_id="evented")
        assert started["event"] == "call.started"
        assert started["call_id"] == "evented"
        assert started["headers"] == {"tenant": "acme"}  # what RTP cannot carry
        assert (started["route"], started["codec"], started["sample_rate"]) == ("echo", "L16", 16000)
        assert (started["payload_type"], started["ptime_ms"]) == (96, 20)
        assert started["gateway_rtp_port"] == answered["rtp_port"]
        assert isinstance(started["ssrc"], int)
        assert ended["event"] == "call.ended"
        assert (ended["call_id"], ended["close_code"], ended["reason"], ended["by_sinch"]) == (
            "evented", 1000, "caller hung up", True)
        gateway.wait_count("call_event.sent", 2)  # counted once the receiver has answered
        assert value(scrape(gateway), "gateway_call_events_total", result="sent") == 2
    finally:
        gateway.stop()


def test_an_unreachable_receiver_costs_a_counted_failure_not_the_call():
    gateway = GatewayProcess("--call-events-url", f"http://127.0.0.1:{free_port()}/events",
                             "--call-events-timeout", "1").start()
    try:
        run(one_call(gateway, "unheard"))
        gateway.wait_count("call_event.failed", 2)
        assert value(scrape(gateway), "gateway_call_events_total", result="failed") == 2
    finally:
        gateway.stop()
