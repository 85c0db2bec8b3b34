"""Interop with an independent RTP stack: ffmpeg receives a call's RTP from an SDP file, and sends RTP into a call.

The gateway runs as a subprocess, a Sinch-like websocket client drives the call, ffmpeg is the media service.
Nothing is mocked; ffmpeg is only ever waited on through real conditions (its sockets bound, its exit).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.aio import run
from tests.gateway_process import GatewayProcess
from tests.media_peer import MediaPeer
from tests.ports import free_port_pair
from tests.sinch_client import SinchCall

FFMPEG = shutil.which("ffmpeg")
pytestmark = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed (scripts/test installs it)")

SECONDS = 2.0  # audio per call
MIN_MATCH_SECONDS = 1.5  # aligned stretch that must match
FFMPEG_TIMEOUT = 10.0
BYE_TIMEOUT = 5.0  # well under ffmpeg's own 10 s "Connection timed out" on a silent RTP input
G711_MIN_SNR_DB = 30.0  # measured 37-38 dB; codec errors score <= 0 dB; see _g711_snr_db
EDGE_SECONDS = 0.05  # resampler start-up (it starts from silence) and the cut at the end are not compared


# ---- signals ---------------------------------------------------------------------------------------------


def speech_like(t: np.ndarray) -> np.ndarray:
    """A voiced-speech-like signal, as a function of time so it can be evaluated at any (fractional) delay:
    16 harmonics (1/k amplitudes) of a fundamental gliding 120-180 Hz, under a ~3 Hz syllabic envelope.
    Everything is below 2.9 kHz, inside the passband of an 8 kHz G.711 leg; the glide makes it aperiodic,
    so an alignment search has one answer. Int16 units, peak under half of full scale."""
    glide_hz, glide_depth = 0.8, 30.0
    phase = 2 * np.pi * (150.0 * t - glide_depth / (2 * np.pi * glide_hz) * np.cos(2 * np.pi * glide_hz * t))
    harmonics = range(1, 17)
    voiced = sum(np.sin(k * phase + 0.7 * k * k) / k for k in harmonics)
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 3.1 * t)
    return voiced * envelope * (0.45 * 32767 / sum(1 / k for k in harmonics))


def l16_signal(rate: int) -> np.ndarray:
    """speech_like plus seeded white noise, as int16: every bit of every sample matters for bit-exactness."""
    t = np.arange(round(rate * SECONDS)) / rate
    noise = np.random.default_rng(rate).normal(0.0, 300.0, len(t))
    return np.clip(np.rint(speech_like(t) + noise), -32768, 32767).astype(np.int16)


def g711_signal(rate: int) -> np.ndarray:
    t = np.arange(round(rate * SECONDS)) / rate
    return np.rint(speech_like(t)).astype(np.int16)


# ---- comparisons -----------------------------------------------------------------------------------------


def assert_bit_exact(sent: np.ndarray, received: np.ndarray, rate: int) -> None:
    """Align by searching the sent signal for the first received samples (a receiver may miss the very
    beginning), then require sample-for-sample equality over the overlap, which must be long."""
    probe = 64
    assert len(received) >= probe, f"only {len(received)} samples received"
    windows = np.lib.stride_tricks.sliding_window_view(sent, probe)
    hits = np.flatnonzero((windows == received[:probe]).all(axis=1))
    assert len(hits) == 1, f"first received samples found at {hits[:5]} in the sent signal (want exactly once)"
    offset = int(hits[0])
    overlap = min(len(received), len(sent) - offset)
    assert overlap >= MIN_MATCH_SECONDS * rate, f"aligned overlap only {overlap / rate:.3f} s (offset {offset})"
    mismatch = np.flatnonzero(received[:overlap] != sent[offset:offset + overlap])
    assert mismatch.size == 0, (
        f"{mismatch.size} of {overlap} aligned samples differ, first at received[{mismatch[0]}]"
        f" (offset {offset}): got {received[mismatch[0]]}, sent {sent[offset + mismatch[0]]}"
    )


def _g711_snr_db(received: np.ndarray, rate: int) -> tuple[float, float, int]:
    """SNR of `received` (at `rate`) against speech_like, after finding its delay to 1/32 sample.

    G.711 is lossy and its 8 kHz leg goes through the gateway's resampler, a linear-phase FIR whose group
    delay is fractional (e.g. 15.75 samples at 8 kHz), so bit-exactness is impossible and an integer-lag
    comparison would measure the half-sample shift, not the audio. The honest reference is the sent signal
    itself, evaluated analytically at the delay that fits best (one parameter: a pure time shift, no gain
    or filter fitted). The signal lies inside the 8 kHz passband, so band-limiting changes it by far less
    than the threshold; what remains is G.711 quantisation and resampler ripple: 37-38 dB measured. A-law
    decoded as µ-law scores about -10 dB, a missing resampler leaves no 1.5 s to compare, a repeated 20 ms
    packet (the rest shifted) about 0 dB, and a single lost one 16-32 dB depending on the envelope where it
    falls. 30 dB leaves 7 dB of margin for the codec and catches most single losses.
    Returns (SNR dB, delay in samples, samples compared)."""
    y = received.astype(np.float64)
    n = np.arange(len(y))
    reference = speech_like(n / rate) * (n < SECONDS * rate)
    # Coarse: integer lag of the cross-correlation peak; received[m] ~ reference[m - lag].
    size = 2 * len(y)
    corr = np.fft.irfft(np.fft.rfft(y, size) * np.conj(np.fft.rfft(reference, size)), size)
    max_lag = round(0.25 * rate)
    lags = np.r_[0:max_lag + 1, -max_lag:0]
    lag = int(lags[np.argmax(corr[lags])])

    def score(delay: float) -> tuple[float, float, int]:
        t = (n - delay) / rate
        keep = (t >= EDGE_SECONDS) & (t <= SECONDS - EDGE_SECONDS)
        ref = speech_like(t[keep])
        noise = np.sum((y[keep] - ref) ** 2)
        return 10 * np.log10(np.sum(ref**2) / max(noise, 1e-9)), delay, int(keep.sum())

    return max((score(lag + step) for step in np.arange(-1.0, 1.0 + 1e-9, 1 / 32)), key=lambda s: s[0])


def assert_g711_close(received: np.ndarray, rate: int) -> None:
    assert len(received) >= MIN_MATCH_SECONDS * rate, f"only {len(received)} samples received"
    snr, delay, compared = _g711_snr_db(received, rate)
    assert compared >= MIN_MATCH_SECONDS * rate, f"only {compared / rate:.3f} s comparable (delay {delay})"
    assert snr > G711_MIN_SNR_DB, f"SNR {snr:.1f} dB at delay {delay:.3f} samples over {compared} samples"


# ---- ffmpeg ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def ffmpeg(args: list[str], log: Path, loglevel: str = "info") -> Iterator[subprocess.Popen[bytes]]:
    """ffmpeg with its log in a file (a pipe could fill up and stall it); killed on the way out."""
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [FFMPEG, "-hide_banner", "-nostdin", "-nostats", "-loglevel", loglevel, "-y", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def wait_exit(proc: subprocess.Popen[bytes], log: Path, timeout: float = FFMPEG_TIMEOUT) -> None:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"ffmpeg still running after {timeout} s:\n{log.read_text()[-3000:]}") from None
    assert proc.returncode == 0, f"ffmpeg exited {proc.returncode}:\n{log.read_text()[-3000:]}"


def udp_ports_of(pid: int) -> set[int]:
    """Local UDP ports of the sockets process `pid` holds (its fds' socket inodes in /proc/net/udp)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(OSError), open(table) as file:
            for line in file.read().splitlines()[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def wait_bound(proc: subprocess.Popen[bytes], ports: set[int], log: Path, timeout: float = 5.0) -> None:
    """Bounded poll on a real condition: ffmpeg's own sockets are bound to `ports`."""
    deadline = time.monotonic() + timeout
    while not ports <= udp_ports_of(proc.pid):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"ffmpeg never bound UDP {sorted(ports)}:\n{log.read_text()[-3000:]}")
        time.sleep(0.01)


def write_sdp(path: Path, port: int, payload_type: int, rtpmap: str) -> Path:
    path.write_text(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=call\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP {payload_type}\r\na=rtpmap:{payload_type} {rtpmap}\r\n"
    )
    return path


# ---- gateway -> ffmpeg -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("codec", "rate", "payload_type", "rtpmap", "wire_rate", "ptime_ms"),
    [
        ("L16", 16000, 96, "L16/16000/1", 16000, 20),
        ("L16", 44100, 11, "L16/44100/1", 44100, 10),  # RFC 3551 static PT 11; 20 ms would exceed the MTU budget
        ("PCMU", 16000, 0, "PCMU/8000", 8000, 20),
    ],
    ids=["L16-16k", "L16-44k1", "PCMU"],
)
def test_ffmpeg_decodes_what_the_caller_said(tmp_path, codec, rate, payload_type, rtpmap, wire_rate, ptime_ms):
    port = free_port_pair()
    sdp = write_sdp(tmp_path / "call.sdp", port, payload_type, rtpmap)
    decoded, log = tmp_path / "decoded.raw", tmp_path / "ffmpeg.log"
    sent = l16_signal(rate) if codec == "L16" else g711_signal(rate)
    call_id = f"to-ffmpeg-{codec}-{rate}"
    args = ["-protocol_whitelist", "file,udp,rtp", "-i", str(sdp), "-c:a", "pcm_s16le", "-f", "s16le", str(decoded)]
    with ffmpeg(args, log, loglevel="debug") as proc:  # debug: ffmpeg logs the RTCP BYE it gets (~5 kB)
        wait_bound(proc, {port, port + 1}, log)
        gateway = GatewayProcess("--route", f"media=rtp://127.0.0.1:{port}?codec={codec}").start()
        try:
            async def scenario() -> None:
                call = await SinchCall.open(gateway.url + "/stream/media")
                try:
                    assert await call.connect(call_id, rate=rate) == {"command": "answer"}
                    await call.send_paced(sent.astype("<i2").tobytes(), rate)
                finally:
                    await call.ws.close(1000, "caller hung up")

            run(scenario())
            answered = gateway.wait_for("call.answered", call_id=call_id)
            ended = gateway.wait_for("call.ended", call_id=call_id)
            # The hangup makes the gateway send RTCP BYE; ffmpeg's RTP demuxer ends the input on it, so ffmpeg
            # finishes by itself (exit 0), and says why: the BYE is understood by an independent stack.
            wait_exit(proc, log, timeout=BYE_TIMEOUT)
            assert "Received BYE for stream 0" in log.read_text(errors="replace"), log.read_text()[-3000:]
        finally:
            gateway_exit = gateway.stop()
    assert gateway_exit == 0
    assert (answered["payload_type"], answered["wire_rate"], answered["ptime_ms"]) == (
        payload_type, wire_rate, ptime_ms)
    assert ended["rtp_packets_out"] == round(SECONDS * 1000 / ptime_ms)
    assert ended["rtp_dropped"] == {}
    received = np.fromfile(decoded, "<i2")
    if codec == "L16":
        assert_bit_exact(sent, received, wire_rate)
    else:
        # 16 kHz call -> gateway resamples to 8 kHz -> µ-law -> ffmpeg's own µ-law decoder.
        assert_g711_close(received, wire_rate)


def test_a_fork_to_ffmpeg_records_the_audio_the_route_receives(tmp_path):
    """Issue 15.5: ffmpeg as a route's fork decodes, sample for sample, what the route's own media service got,
    and ends on the fork's own RTCP BYE."""
    rate, port = 16000, free_port_pair()
    sdp = write_sdp(tmp_path / "fork.sdp", port, 96, "L16/16000/1")
    decoded, log = tmp_path / "decoded.raw", tmp_path / "ffmpeg.log"
    args = ["-protocol_whitelist", "file,udp,rtp", "-i", str(sdp), "-c:a", "pcm_s16le", "-f", "s16le", str(decoded)]
    with ffmpeg(args, log, loglevel="debug") as proc:
        wait_bound(proc, {port, port + 1}, log)

        async def scenario() -> bytes:
            primary = await MediaPeer(echo=False).start()
            gateway = await asyncio.to_thread(GatewayProcess(
                "--route", f"rec=rtp://127.0.0.1:{primary.port}?fork=127.0.0.1:{port}").start)
            try:
                call = await SinchCall.open(gateway.url + "/stream/rec")
                assert await call.connect("fork-to-ffmpeg", rate=rate) == {"command": "answer"}
                await call.send_paced(l16_signal(rate).astype("<i2").tobytes(), rate)
                await call.ws.close(1000, "caller hung up")
                await primary.wait_until(lambda: len(primary.packets) == round(SECONDS * 50))
                return b"".join(packet.payload for packet in primary.packets)
            finally:
                assert gateway.stop() == 0
                primary.close()

        heard_by_route = np.frombuffer(run(scenario()), ">i2")
        wait_exit(proc, log, timeout=BYE_TIMEOUT)  # the fork's BYE, under its own SSRC, ends ffmpeg's input
    assert_bit_exact(heard_by_route, np.fromfile(decoded, "<i2"), rate)


# ---- ffmpeg -> gateway -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("codec", "wire_rate", "encoder", "payload_type", "packet_option"),
    [
        ("L16", 16000, "pcm_s16be", 96, ""),  # ffmpeg's default packetisation: 40 ms per packet here
        ("PCMU", 8000, "pcm_mulaw", 0, "&pkt_size=172"),  # 12-byte header + 160 bytes: 20 ms packets
    ],
    ids=["L16-16k", "PCMU"],
)
def test_ffmpeg_audio_reaches_the_caller(tmp_path, codec, wire_rate, encoder, payload_type, packet_option):
    call_rate = 16000
    route_port = free_port_pair()  # ffmpeg sends FROM here: the gateway accepts RTP only from the route address
    sent = l16_signal(wire_rate) if codec == "L16" else g711_signal(wire_rate)
    source, log = tmp_path / "source.raw", tmp_path / "ffmpeg.log"
    source.write_bytes(sent.astype("<i2").tobytes())
    call_id = f"from-ffmpeg-{codec}"
    # The PCMU run also asks ffmpeg for an RTCP BYE at the end, which must end the call.
    bye = codec == "PCMU"
    gateway = GatewayProcess("--route", f"bot=rtp://127.0.0.1:{route_port}?codec={codec}").start()
    try:
        async def scenario() -> tuple[bytes, tuple[int, str] | None]:
            call = await SinchCall.open(gateway.url + "/stream/bot")
            try:
                assert await call.connect(call_id, rate=call_rate) == {"command": "answer"}
                answered = await asyncio.to_thread(gateway.wait_for, "call.answered", call_id=call_id)
                assert answered["payload_type"] == payload_type
                args = [
                    "-re", "-f", "s16le", "-ar", str(wire_rate), "-ac", "1", "-i", str(source),
                    "-c:a", encoder, "-payload_type", str(payload_type), *(["-rtpflags", "send_bye"] if bye else []),
                    "-f", "rtp", f"rtp://127.0.0.1:{answered['rtp_port']}?localrtpport={route_port}{packet_option}",
                ]
                with ffmpeg(args, log) as proc:
                    if bye:
                        closed = await call.closed(timeout=FFMPEG_TIMEOUT)
                        audio = bytes(call.audio)
                    else:
                        closed = None
                        audio = await call.receive_audio(len(sent) * call_rate // wire_rate * 2, FFMPEG_TIMEOUT)
                    await asyncio.to_thread(wait_exit, proc, log)
            finally:
                await call.ws.close(1000, "caller hung up")  # no-op once the gateway has closed it
            return audio, closed

        audio, closed = run(scenario())
        ended = gateway.wait_for("call.ended", call_id=call_id)
    finally:
        gateway_exit = gateway.stop()
    assert gateway_exit == 0
    # Nothing dropped: ffmpeg's RTP (from route_port) and its RTCP (from route_port + 1) both pass the
    # symmetric-RTP source check, and its packets carry the payload type the call negotiated.
    assert ended["rtp_dropped"] == {}
    assert ended["rtp_packets_in"] > 0
    received = np.frombuffer(audio, "<i2")
    if codec == "L16":
        assert_bit_exact(sent, received, call_rate)
    else:
        assert closed == (1000, "media service sent RTCP BYE")
        # ffmpeg's µ-law encoder -> gateway's µ-law decoder -> resampled 8 -> 16 kHz for the 16 kHz call.
        assert_g711_close(received, call_rate)
