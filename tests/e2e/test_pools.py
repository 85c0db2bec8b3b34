"""Media service pools end to end: a route of several targets (two media peers), calls spread by policy,
failover when one stops, and a DNS name that does not resolve refused at load."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import wave
from collections.abc import AsyncIterator, Callable

from tests.aio import run
from tests.gateway_process import GatewayProcess, scrape, value
from tests.media_peer import MediaPeer
from tests.rtcp import sdes_cname
from tests.sinch_client import FRAME_SECONDS, SinchCall, frames, sine

RATE = 16000


class TalkingCall:
    """A Sinch call that sends paced audio until stopped and notes when each frame of audio comes back."""

    def __init__(self, call: SinchCall) -> None:
        self.call = call
        self.arrivals: list[float] = []
        self.frames: list[bytes] = []
        self._stop = asyncio.Event()

    @classmethod
    async def start(cls, url: str, call_id: str) -> TalkingCall:
        call = await SinchCall.open(url)
        assert await call.connect(call_id, rate=RATE) == {"command": "answer"}
        talking = cls(call)
        loop = asyncio.get_running_loop()
        talking._tasks = [loop.create_task(talking._send()), loop.create_task(talking._receive())]
        return talking

    async def _send(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index, frame in enumerate(frames(sine(RATE, 60), RATE)):
            if self._stop.is_set():
                return
            await self.call.ws.send(frame)
            await asyncio.sleep(max(0.0, start + (index + 1) * FRAME_SECONDS - loop.time()))

    async def _receive(self) -> None:
        loop = asyncio.get_running_loop()
        async for message in self.call.ws:
            if isinstance(message, bytes):
                self.arrivals.append(loop.time())
                self.frames.append(message)

    async def frames_after(self, moment: float, count: int, timeout: float = 5.0) -> None:
        await self.frames_such(lambda: sum(arrival > moment for arrival in self.arrivals) >= count, timeout)

    async def frames_such(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async def enough() -> None:
            while not predicate():
                await asyncio.sleep(FRAME_SECONDS)
        try:
            await asyncio.wait_for(enough(), timeout)
        except TimeoutError:  # what the call saw, for the failure's message
            last = asyncio.get_running_loop().time() - self.arrivals[-1] if self.arrivals else None
            raise AssertionError(
                f"{len(self.arrivals)} frames, the last {last} s ago; websocket closed: {self.call.ws.close_code} "
                f"{self.call.ws.close_reason!r}") from None

    def longest_gap(self) -> float:
        return max(later - earlier for earlier, later in zip(self.arrivals, self.arrivals[1:], strict=False))

    async def hang_up(self) -> None:
        self._stop.set()
        await self.call.ws.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def sources(peer: MediaPeer) -> set[int]:
    return {packet.ssrc for packet in peer.packets}


@contextlib.asynccontextmanager
async def pool_route(query: str, second_echoes: bool = True) -> AsyncIterator[tuple[MediaPeer, MediaPeer, list[str],
                                                                                  GatewayProcess]]:
    """Two media peers behind the route `pool` (with these options), and the gateway; all stopped after."""
    first, second = await MediaPeer().start(), await MediaPeer(echo=second_echoes).start()
    targets = [f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"]
    gateway = await asyncio.to_thread(GatewayProcess("--route", f"pool=rtp://{','.join(targets)}?{query}").start)
    try:
        yield first, second, targets, gateway
    finally:
        gateway.stop()
        first.close()
        second.close()


def test_calls_spread_round_robin_and_by_least_calls():
    async def scenario() -> None:
        first, second = await MediaPeer().start(), await MediaPeer().start()
        targets = [f"127.0.0.1:{first.port}", f"localhost:{second.port}"]  # a DNS name resolves at load
        gateway = await asyncio.to_thread(GatewayProcess(
            "--route", f"rr=rtp://{','.join(targets)}",
            "--route", f"least=rtp://{','.join(targets)}?policy=least_calls").start)
        try:
            calls = [await TalkingCall.start(gateway.url + "/stream/rr", f"rr-{index}") for index in range(4)]
            answered = [gateway.wait_for("call.answered", call_id=f"rr-{index}")["target"] for index in range(4)]
            assert answered == [targets[0], targets[1], targets[0], targets[1]]
            await first.wait_until(lambda: len(sources(first)) == 2)
            await second.wait_until(lambda: len(sources(second)) == 2)
            samples = scrape(gateway)
            assert [value(samples, "gateway_target_calls", route="rr", target=target) for target in targets] == [2, 2]
            for call in calls:
                await call.hang_up()

            kept = await TalkingCall.start(gateway.url + "/stream/least", "least-0")
            ended = await TalkingCall.start(gateway.url + "/stream/least", "least-1")
            await ended.hang_up()
            gateway.wait_for("call.ended", call_id="least-1")
            third = await TalkingCall.start(gateway.url + "/stream/least", "least-2")
            least = [gateway.wait_for("call.answered", call_id=f"least-{index}")["target"] for index in range(3)]
            assert least == [targets[0], targets[1], targets[1]]  # the target with fewer calls, not the next
            await kept.hang_up()
            await third.hang_up()
        finally:
            gateway.stop()
            first.close()
            second.close()

    run(scenario())


def test_a_route_whose_name_does_not_resolve_is_refused_at_load():
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--route", "asr=rtp://127.0.0.1:5004,no-such-host.invalid:5006"],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "routes.asr: no-such-host.invalid does not resolve" in result.stderr


def test_calls_move_to_the_other_target_when_one_stops_and_come_back_when_it_restarts():
    async def scenario() -> None:
        first, second = await MediaPeer().start(), await MediaPeer().start()
        targets = [f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"]
        gateway = await asyncio.to_thread(GatewayProcess(
            "--route", f"pool=rtp://{','.join(targets)}", "--target-probe-interval", "0.2").start)
        try:
            calls = [await TalkingCall.start(gateway.url + "/stream/pool", f"pool-{index}") for index in range(4)]
            await first.wait_until(lambda: len(sources(first)) == 2)
            await second.wait_until(lambda: len(sources(second)) == 2)
            loop = asyncio.get_running_loop()
            await asyncio.gather(*(call.frames_after(loop.time(), 10) for call in calls))
            first.close()  # its ports close: the next datagram to them gets ICMP port unreachable
            stopped_at = loop.time()
            moved = await asyncio.to_thread(gateway.wait_count, "call.failover", 2)
            assert {event["call_id"] for event in moved} == {"pool-0", "pool-2"}
            assert all((event["previous"], event["target"], event["reason"]) == (*targets, "unreachable")
                       for event in moved)
            await second.wait_until(lambda: len(sources(second)) == 4)  # the moved calls, with new SSRCs
            await asyncio.gather(*(call.frames_after(stopped_at, 25) for call in calls))
            for call in calls:
                assert call.longest_gap() < 1.0, call.longest_gap()  # issue 15: moved in under a second
            assert not [event for event in gateway.events if event.get("event") == "call.ended"]
            samples = scrape(gateway)
            assert value(samples, "gateway_target_failovers_total", route="pool", target=targets[0]) == 2
            assert value(samples, "gateway_target_down_total", route="pool", target=targets[0],
                         reason="unreachable") == 1
            assert value(samples, "gateway_target_calls", route="pool", target=targets[1]) == 4

            restarted = await MediaPeer().start(first.port)
            await asyncio.to_thread(gateway.wait_for, "target.up", target=targets[0])
            later = [await TalkingCall.start(gateway.url + "/stream/pool", f"later-{index}") for index in range(2)]
            await restarted.wait_until(lambda: len(sources(restarted)) == 1)  # new calls reach it again
            for call in [*calls, *later]:
                await call.hang_up()
            restarted.close()
        finally:
            gateway.stop()
            second.close()

    run(scenario())


def test_a_call_on_a_single_target_hears_its_media_service_again_after_a_restart():
    async def scenario() -> None:
        peer = await MediaPeer().start()
        gateway = await asyncio.to_thread(GatewayProcess("--route", peer.route("solo")).start)
        try:
            call = await TalkingCall.start(gateway.url + "/stream/solo", "solo")
            loop = asyncio.get_running_loop()
            await call.frames_after(loop.time(), 10)
            peer.close()  # the next datagrams get ICMP port unreachable: ECONNREFUSED on the call's sockets
            await asyncio.to_thread(gateway.wait_for, "target.down", route="solo")
            restarted = await MediaPeer().start(peer.port)
            await restarted.wait_until(lambda: len(restarted.packets) >= 1)
            await call.frames_after(loop.time(), 25)  # its echo reaches Sinch: the sockets are still read
            await call.hang_up()
            restarted.close()
        finally:
            gateway.stop()

    run(scenario())


def test_a_route_whose_hold_sound_cannot_be_read_is_refused_at_load(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--route", f"asr=rtp://127.0.0.1:5004?hold_sound={tmp_path}/no.wav"],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert f"routes.asr: hold_sound: {tmp_path}/no.wav: [Errno 2] No such file or directory" in result.stderr


def test_a_failover_plays_the_routes_hold_sound_until_the_new_targets_audio(tmp_path):
    """Sinch hears the hold sound, looped frame by frame, from the failover until the new target's audio."""
    samples = RATE // 50
    hold_frames = [value.to_bytes(2, "little") * samples for value in (1000, 1001, 1002)]  # one value a frame
    with wave.open(str(tmp_path / "hold.wav"), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)  # the call's rate: its samples reach Sinch as they are
        wav.writeframes(b"".join(hold_frames))

    async def scenario() -> None:
        async with pool_route(f"hold_sound={tmp_path}/hold.wav", second_echoes=False) as (first, second, _, gateway):
            call = await TalkingCall.start(gateway.url + "/stream/pool", "held")
            loop = asyncio.get_running_loop()
            await call.frames_after(loop.time(), 10)
            assert not set(call.frames) & set(hold_frames)  # the first target's echo, no hold sound
            first.close()
            await asyncio.to_thread(gateway.wait_for, "call.failover", call_id="held")
            await call.frames_such(lambda: sum(frame in hold_frames for frame in call.frames) >= 10)
            second.echo = True  # the new target's audio arrives
            await call.frames_after(loop.time(), 20)
            held = [index for index, frame in enumerate(call.frames) if frame in hold_frames]
            assert held == list(range(held[0], held[-1] + 1))  # unbroken: none once the audio came
            assert len(call.frames) - 1 - held[-1] >= 10  # the new target's audio after them
            assert [hold_frames.index(call.frames[index]) for index in held] == [i % 3 for i in range(len(held))]
            assert call.longest_gap() < 1.0
            await call.hang_up()

    run(scenario())


def test_a_target_that_stops_sending_rtp_back_is_marked_down_after_rtp_timeout():
    async def scenario() -> None:
        async with pool_route("rtp_timeout=0.3") as (first, _, targets, gateway):
            calls = [await TalkingCall.start(gateway.url + "/stream/pool", f"quiet-{index}") for index in range(2)]
            loop = asyncio.get_running_loop()
            await asyncio.gather(*(call.frames_after(loop.time(), 10) for call in calls))
            first.echo = False  # listening, but no RTP back: only the timeout can tell
            moved = await asyncio.to_thread(gateway.wait_for, "call.failover", call_id="quiet-0")
            assert (moved["previous"], moved["target"], moved["reason"]) == (*targets, "no_rtp")
            await calls[0].frames_after(loop.time(), 10)  # the other target's audio, on the same call
            assert calls[0].longest_gap() < 1.0  # silence paced to Sinch from the failover to that audio
            assert value(scrape(gateway), "gateway_target_down_total", route="pool", target=targets[0],
                         reason="no_rtp") == 1
            for call in calls:
                await call.hang_up()

    run(scenario())


def test_a_fork_gets_the_same_audio_as_its_own_stream_and_is_never_heard():
    async def scenario() -> None:
        primary, fork = await MediaPeer(echo=False).start(), await MediaPeer().start()  # the fork echoes: unheard
        gateway = await asyncio.to_thread(GatewayProcess(
            "--route", f"rec=rtp://127.0.0.1:{primary.port}?codec=PCMU&fork=localhost:{fork.port}").start)
        try:
            call = await SinchCall.open(gateway.url + "/stream/rec")
            assert await call.connect("forked", rate=RATE) == {"command": "answer"}
            await call.send_paced(sine(RATE, 0.5), RATE)
            await primary.wait_until(lambda: len(primary.packets) == 25)
            await fork.wait_until(lambda: len(fork.packets) == 25 and len(fork.rtcp) >= 1)
            assert [packet.payload for packet in fork.packets] == [packet.payload for packet in primary.packets]
            assert [packet.sequence for packet in fork.packets] == [packet.sequence for packet in primary.packets]
            (fork_ssrc,), (primary_ssrc,) = sources(fork), sources(primary)
            assert fork_ssrc != primary_ssrc and fork.packets[0].payload_type == 0
            assert [int.from_bytes(packet.body[:4], "big") for packet in fork.rtcp[0]] == [fork_ssrc, fork_ssrc]
            assert sdes_cname(fork.rtcp[0]) == "forked"  # its own RTCP: an SR and a CNAME of its SSRC
            await call.ws.close()
            ended = await asyncio.to_thread(gateway.wait_for, "call.ended", call_id="forked")
            assert ended["rtp_packets_in"] == 0 and ended["ws_frames_out"] == 1  # the answer; no fork audio
        finally:
            gateway.stop()
            primary.close()
            fork.close()

    run(scenario())
