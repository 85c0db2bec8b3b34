"""End to end: the real gateway as a subprocess, a Sinch-like websocket client, real UDP on loopback."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import urllib.request

import numpy as np
import pytest
import websockets

from gateway.core.rtp import RtpPacketizer, build_bye, bye_sources
from tests.aio import run
from tests.gateway_process import GatewayProcess, scrape, value
from tests.media_peer import MediaPeer
from tests.rtcp import sdes_cname
from tests.sinch_client import SinchCall, frames, sine


@pytest.fixture(scope="module")
def echo_gateway():
    gateway = GatewayProcess("--connect-timeout", "1", "--max-frame-bytes", "8192").start()
    yield gateway
    assert gateway.stop() == 0


async def start_gateway_with(peer_route: str, *args: str) -> GatewayProcess:
    return await asyncio.to_thread(GatewayProcess("--route", peer_route, *args).start)


def snr_db(reference: np.ndarray, received: np.ndarray) -> float:
    noise = reference - received
    return 10 * np.log10(np.sum(reference**2) / max(np.sum(noise**2), 1e-9))


def align(reference: np.ndarray, received: np.ndarray, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Received and reference, overlapped at the delay that matches best (the resamplers' filter delay)."""
    length = len(received) - max_lag
    best = max(range(max_lag), key=lambda lag: float(np.dot(reference[:length], received[lag:lag + length])))
    return received[best:best + length], reference[:length]


def test_healthz(echo_gateway):
    with urllib.request.urlopen(f"http://127.0.0.1:{echo_gateway.port}/healthz", timeout=5) as response:
        assert response.status == 200
        assert response.read() == b"ok\n"


@pytest.mark.parametrize(
    ("path", "status"), [("/stream/nope", 404), ("/other", 404), ("/stream/echo?rate=11025", 400)]
)
def test_upgrade_declined_with_status(echo_gateway, path, status):
    async def scenario() -> None:
        with pytest.raises(websockets.InvalidStatus) as info:
            await websockets.connect(echo_gateway.url + path)
        assert info.value.response.status_code == status

    run(scenario())


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000, 96000])
def test_echo_route_returns_identical_l16(echo_gateway, rate):
    async def scenario() -> None:
        call = await SinchCall.open(echo_gateway.url + "/stream/echo")
        assert await call.connect(f"echo-{rate}", rate=rate) == {"command": "answer"}
        pcm = sine(rate, 0.6, freq=1000)
        for frame in frames(pcm, rate):
            await call.ws.send(frame)
        assert await call.receive_audio(len(pcm)) == pcm
        await call.ws.close()

    run(scenario())
    answered = echo_gateway.wait_for("call.answered", call_id=f"echo-{rate}")
    assert answered["sample_rate"] == rate
    assert answered["wire_rate"] * answered["ptime_ms"] // 1000 * 2 <= 1200  # MTU budget


def test_any_chunk_size_including_odd(echo_gateway):
    async def scenario() -> None:
        call = await SinchCall.open(echo_gateway.url + "/stream/echo")
        await call.connect("odd-chunks", rate=16000)
        pcm = sine(16000, 0.5, freq=700)
        for start in range(0, len(pcm), 333):
            await call.ws.send(pcm[start:start + 333])
        assert await call.receive_audio(len(pcm) // 640 * 640) == pcm[: len(pcm) // 640 * 640]
        await call.ws.close()

    run(scenario())


def test_one_audio_frame_in_64_is_timed_for_the_upstream_latency_histogram():
    gateway = GatewayProcess().start()
    try:
        async def scenario() -> None:
            call = await SinchCall.open(gateway.url + "/stream/echo")
            await call.connect("latency-samples", rate=8000)
            pcm = sine(8000, 2.56)  # 128 frames: the 64th and the 128th are timed
            await call.send_paced(pcm, 8000)
            await call.receive_audio(len(pcm))
            await call.ws.close()

        run(scenario())
        gateway.wait_for("call.ended", call_id="latency-samples")

        async def timed_frames() -> float:  # the samples are observed at the worker's metrics flushes (1 s)
            while (count := value(scrape(gateway), "gateway_upstream_latency_seconds_count")) < 2:
                await asyncio.sleep(0.1)
            return count

        assert run(timed_frames(), deadline=5) == 2
    finally:
        assert gateway.stop() == 0


def test_url_rate_applies_when_connect_has_none(echo_gateway):
    async def scenario() -> None:
        call = await SinchCall.open(echo_gateway.url + "/stream/echo?rate=24000")
        assert await call.connect("url-rate", rate=None) == {"command": "answer"}
        pcm = sine(24000, 0.2)
        for frame in frames(pcm, 24000):
            await call.ws.send(frame)
        assert await call.receive_audio(len(pcm)) == pcm
        await call.ws.close()

    run(scenario())
    assert echo_gateway.wait_for("call.answered", call_id="url-rate")["sample_rate"] == 24000


def test_hangup_by_sinch_is_logged_with_its_code(echo_gateway):
    async def scenario() -> None:
        call = await SinchCall.open(echo_gateway.url + "/stream/echo")
        await call.connect("sinch-hangup")
        await call.ws.close(1000, "caller hung up")

    run(scenario())
    ended = echo_gateway.wait_for("call.ended", call_id="sinch-hangup")
    assert (ended["close_code"], ended["reason"], ended["by_peer"]) == (1000, "caller hung up", True)


@pytest.mark.parametrize(
    ("messages", "code", "reason"),
    [
        (["{not json"], 1007, "not JSON"),
        ([b"\x00\x01" * 160], 1008, "audio before connect"),
        ([], 1008, "no connect command within 1s"),
        (['{"command":"connect"}'], 1008, "no call id"),
        (['{"command":"connect","callId":"x","sampleRate":12345}'], 1008, "sampleRate 12345"),
        (['{"command":"connect","callId":"twice"}', '{"command":"connect","callId":"twice"}'], 1008,
         "second connect command"),
        (['{"command":"connect","callId":"big"}', b"\x00" * 10000], 1009, ""),
    ],
)
def test_bad_input_closes_that_call_only(echo_gateway, messages, code, reason):
    async def healthy_call() -> None:
        call = await SinchCall.open(echo_gateway.url + "/stream/echo")
        await call.connect(f"healthy-{code}-{len(messages)}", rate=16000)
        pcm = sine(16000, 1.2, freq=500)
        sender = asyncio.ensure_future(call.send_paced(pcm, 16000))
        assert await call.receive_audio(len(pcm)) == pcm
        await sender
        await call.ws.close()

    async def bad_call() -> None:
        call = await SinchCall.open(echo_gateway.url + "/stream/echo")
        for message in messages:
            await call.ws.send(message)
        got_code, got_reason = await call.closed(timeout=5)
        assert got_code == code
        assert reason in got_reason
        if messages and isinstance(messages[0], str) and "callId" not in messages[0]:
            assert call.commands == [{"command": "reject"}]

    async def scenario() -> None:
        await asyncio.gather(healthy_call(), bad_call())

    run(scenario())


def test_unknown_command_is_ignored_and_the_call_goes_on(echo_gateway):
    async def scenario() -> None:
        call = await SinchCall.open(echo_gateway.url + "/stream/echo")
        await call.connect("unknown-command")
        await call.ws.send(json.dumps({"command": "dtmf", "digit": "1"}))
        pcm = sine(16000, 0.2)
        await call.ws.send(pcm)
        assert await call.receive_audio(len(pcm)) == pcm
        await call.ws.close()

    run(scenario())


def test_heartbeat_and_maximum_duration():
    gateway = GatewayProcess("--heartbeat-interval", "0.2", "--max-call-duration", "1").start()

    async def scenario() -> None:
        call = await SinchCall.open(gateway.url + "/stream/echo")
        await call.connect("quiet")
        assert await call.next_command(timeout=2) == {"command": "heartbeat"}
        code, reason = await call.closed(timeout=3)
        assert (code, reason) == (1000, "maximum call duration reached")
        assert call.commands.count({"command": "heartbeat"}) >= 3

    try:
        run(scenario())
    finally:
        assert gateway.stop() == 0


def test_pcmu_route_packets_and_audio_within_g711_tolerance():
    async def scenario() -> None:
        peer = await MediaPeer(echo=True).start()
        gateway = await start_gateway_with(peer.route("asr", "codec=PCMU"))
        try:
            call = await SinchCall.open(gateway.url + "/stream/asr")
            await call.connect("pcmu-call", rate=16000)
            pcm = sine(16000, 1.0, freq=1000, amplitude=0.3)
            sender = asyncio.ensure_future(call.send_paced(pcm, 16000))
            received = await call.receive_audio(len(pcm) - 3200)
            await sender
            await call.ws.close()
        finally:
            await asyncio.to_thread(gateway.stop)
            peer.close()
        assert {p.payload_type for p in peer.packets} == {0}
        assert {len(p.payload) for p in peer.packets} == {160}  # 20 ms at 8 kHz, one byte a sample
        assert [p.marker for p in peer.packets[:2]] == [True, False]
        assert len({p.ssrc for p in peer.packets}) == 1
        sequences = [p.sequence for p in peer.packets]
        assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(sequences))
        reference = np.frombuffer(pcm, "<i2").astype(float)
        got, core = align(reference, np.frombuffer(received, "<i2").astype(float), 400)
        assert snr_db(core, got) > 25

    run(scenario())


def test_rtcp_sender_report_names_the_call_and_bye_follows_hangup():
    async def scenario() -> None:
        peer = await MediaPeer(echo=True).start()
        gateway = await start_gateway_with(peer.route("rec"))
        try:
            call = await SinchCall.open(gateway.url + "/stream/rec")
            await call.connect("cname-call", rate=8000)
            await call.ws.send(sine(8000, 0.1))
            await peer.wait_until(lambda: peer.rtcp)
            assert sdes_cname(peer.rtcp[0]) == "cname-call"
            await call.ws.close(1000, "caller hung up")
            await peer.wait_until(lambda: bye_sources(peer.rtcp[-1]))
            assert sdes_cname(peer.rtcp[-1]) == "cname-call"
        finally:
            await asyncio.to_thread(gateway.stop)
            peer.close()

    run(scenario())


def test_a_burst_from_the_media_service_reaches_sinch_at_real_time():
    """A burst (a TTS answer sent at once) waits in the return queue and goes to Sinch one frame per 20 ms: the
    worker's timer comes every tick interval once a call waits on the clock. Were it left at the 100 ms deadline
    tick, the burst would leave at one frame per 100 ms (the lead is one frame here): five times too slow."""
    async def scenario() -> None:
        peer = await MediaPeer(echo=False).start()
        gateway = await start_gateway_with(peer.route("tts"), "--pacing-lead-frames", "1")
        try:
            call = await SinchCall.open(gateway.url + "/stream/tts")
            await call.connect("burst", rate=8000)
            await call.ws.send(sine(8000, 0.02))  # one frame, so the peer learns where the call's RTP comes from
            await peer.wait_until(lambda: peer.packets)
            packetizer = RtpPacketizer(peer.packets[0].payload_type, 0x5EED, 1, 0)
            burst = [packetizer.pack(bytes(320), 160) for _ in range(50)]  # 1 s of silence, L16 at 8 kHz
            loop = asyncio.get_running_loop()
            started = loop.time()
            for packet in burst:
                peer.rtp_transport.sendto(packet, peer.gateway_rtp)
            await call.receive_audio(len(burst) * 320)
            took = loop.time() - started
            assert 0.9 <= took < 3.0, f"50 frames took {took:.2f} s"
            await call.ws.close()
        finally:
            await asyncio.to_thread(gateway.stop)
            peer.close()

    run(scenario())


def test_media_service_bye_hangs_up_and_strays_never_arrive():
    async def scenario() -> None:
        peer = await MediaPeer(echo=True).start()
        gateway = await start_gateway_with(peer.route("bot"))
        try:
            call = await SinchCall.open(gateway.url + "/stream/bot")
            await call.connect("bye-call", rate=8000)
            await call.ws.send(sine(8000, 0.1))
            await peer.wait_until(lambda: peer.gateway_rtp and peer.rtcp)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
                stranger.sendto(bytes(peer.packets[0].payload), peer.gateway_rtp)  # not from the route
            peer.rtp_transport.sendto(b"\x80\x00\x01", peer.gateway_rtp)  # truncated RTP from the route
            # Audio echoed after the strays proves the gateway has read them (one socket, in order).
            await call.ws.send(sine(8000, 0.02))
            await call.receive_audio(len(sine(8000, 0.12)))
            peer.rtcp_transport.sendto(build_bye(peer.packets[0].ssrc, "media"), peer.gateway_rtcp)  # its stream
            assert await call.closed() == (1000, "media service sent RTCP BYE")
        finally:
            await asyncio.to_thread(gateway.stop)
            peer.close()
        ended = gateway.wait_for("call.ended", call_id="bye-call")
        # the stranger's datagram never reached the gateway: its RTP socket is connected to the route
        assert ended["rtp_dropped"] == {"too_short": 1}
        assert ended["by_peer"] is False

    run(scenario())


def test_failed_upgrades_leak_no_sockets(echo_gateway):
    """A request routed to a call (RTP ports bound) whose websocket handshake then fails gives them back."""
    worker = echo_gateway.wait_for("worker.listening")["pid"]
    before = len(os.listdir(f"/proc/{worker}/fd"))
    for _ in range(50):
        with socket.create_connection(("127.0.0.1", echo_gateway.port), timeout=5) as sock:
            # routed (version 13), then refused by the websocket handshake: no Upgrade or key headers
            sock.sendall(b"GET /stream/echo HTTP/1.1\r\nHost: gateway\r\nSec-WebSocket-Version: 13\r\n\r\n")
            reply = b""
            while chunk := sock.recv(4096):  # until the gateway closes the connection
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 4")
    assert len(os.listdir(f"/proc/{worker}/fd")) <= before + 2


def test_an_oversized_message_is_refused_not_forwarded(echo_gateway):
    async def scenario() -> None:
        call = await SinchCall.open(echo_gateway.url + "/stream/echo")
        await call.connect("too-big", rate=8000)
        await call.ws.send(b"\x00" * 9000)  # over this gateway's --max-frame-bytes 8192
        code, _ = await call.closed()
        assert code == 1009

    run(scenario())
    ended = echo_gateway.wait_for("call.ended", call_id="too-big")
    assert (ended["close_code"], ended["by_peer"], ended["rtp_packets_out"]) == (1009, False, 0)
