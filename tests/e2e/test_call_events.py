"""JSON call events posted to a media service's URL: what it learns of each call, and that a failing receiver
costs a counted failure, never the call."""

from __future__ import annotations

import asyncio
import json
import threading
import time

from aiohttp import web

from tests.aio import run
from tests.gateway_process import GatewayProcess, scrape, value
from tests.media_peer import MediaPeer
from tests.ports import free_port
from tests.sinch_client import SinchCall, sine


class EventReceiver:
    """An HTTP endpoint on loopback that keeps every JSON body posted to it. With `hold`, it answers each post
    only once `hold` is set (a slow receiver), and notes when it answered."""

    def __init__(self, hold: threading.Event | None = None) -> None:
        self.events: list[dict] = []
        self.arrived = threading.Condition()
        self._ready = threading.Event()
        self._hold = hold
        self.answered_at: list[float] = []

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
            if self._hold is not None:
                await asyncio.to_thread(self._hold.wait, 10)
            self.answered_at.append(time.monotonic())
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


class TimedPeer(MediaPeer):
    """A media service that notes when the call's first RTP packet reached it."""

    first_rtp_at: float | None = None

    def received(self, data: bytes, addr: tuple[str, int], rtcp: bool) -> None:
        if not rtcp and self.first_rtp_at is None:
            self.first_rtp_at = time.monotonic()
        super().received(data, addr, rtcp)


async def call_held_for_its_start(receiver: EventReceiver, wait: str, release: threading.Event | None
                                  ) -> tuple[GatewayProcess, TimedPeer]:
    """A call on a route to a TimedPeer with call_started_wait: 10 frames sent while the receiver holds its
    answer to call.started; then (with `release`) the receiver answers. Every frame reaches the peer."""
    peer = await TimedPeer(echo=False).start()
    gateway = await asyncio.to_thread(GatewayProcess("--route", peer.route("bot"), "--call-events-url", receiver.url,
                                                     "--call-started-wait", wait).start)
    call = await SinchCall.open(gateway.url + "/stream/bot")
    assert await call.connect("held", rate=16000) == {"command": "answer"}
    await call.send_paced(sine(16000, 0.2), 16000)
    if release is not None:
        release.set()
    await peer.wait_until(lambda: len(peer.packets) == 10)
    await call.ws.close(1000, "caller hung up")
    peer.close()
    return gateway, peer


def test_with_call_started_wait_rtp_waits_for_the_receiver_to_answer():
    """Issue 12.7: the media service has the call's metadata before its first RTP packet."""
    release = threading.Event()
    receiver = EventReceiver(hold=release).start()
    gateway, peer = run(call_held_for_its_start(receiver, "5", release))
    try:
        started = receiver.events[0]
        assert started["event"] == "call.started" and started["call_id"] == "held"
        assert peer.first_rtp_at >= receiver.answered_at[0]  # held 200 ms, then all 10 frames, none lost
        assert {packet.ssrc for packet in peer.packets} == {started["ssrc"]}
    finally:
        gateway.stop()


def test_a_receiver_slower_than_call_started_wait_holds_rtp_no_longer():
    never = threading.Event()  # set at the end, so the receiver's thread does not linger
    receiver = EventReceiver(hold=never).start()
    gateway, _ = run(call_held_for_its_start(receiver, "0.1", None))
    try:
        expired = gateway.wait_for("call.started_wait_expired", call_id="held")
        assert expired["held_packets"] >= 1
        assert not receiver.answered_at  # the RTP went out while the receiver still held its answer
    finally:
        never.set()
        gateway.stop()
