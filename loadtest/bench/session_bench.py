"""The gateway's own per-frame Python cost, without sockets: a CallSession fed 20 ms frames from Sinch and RTP
packets back from the media service, its output discarded. What the full benchmark measures on top of this is
the event loop, picows and the kernel."""

from __future__ import annotations

import time

import numpy as np

from gateway.core.call import CallOutput
from gateway.core.commands import Connect
from gateway.core.rtp import RtpPacketizer
from gateway.core.session import CallSession
from gateway.shared.config import Config, Route

FRAMES = 50_000


class _Discard(CallOutput):
    def send_command(self, message: bytes) -> None: ...
    def send_audio(self, pcm: bytes) -> None: ...
    def send_rtp(self, packet: bytes) -> None: ...
    def send_rtcp(self, packet: bytes) -> None: ...
    def admit(self) -> bool:
        return True
    def answered(self, connect: Connect, sample_rate: int) -> None: ...
    def close(self, code: int, reason: str) -> None: ...
    def mark_settled(self, mark_id: int, timestamp: int, outcome: str) -> None: ...
    def dtmf(self, digit: str, seconds: float) -> None: ...


def _per_frame_us(codec: str, rate: int, dtmf: int = 0) -> tuple[float, float]:
    route = Route(name="bench", host="127.0.0.1", port=5004, codec=codec, dtmf=dtmf)  # type: ignore[arg-type]
    session = CallSession(Config(routes={"bench": route}), route, _Discard(), now=0.0)
    session.on_text(f'{{"command":"connect","callId":"bench","sampleRate":{rate}}}'.encode(), 0.0)
    fmt = session.format
    frame = (np.sin(np.arange(fmt.frame_bytes // 2) * 0.05) * 8000).astype("<i2").tobytes()
    started = time.perf_counter()
    for index in range(FRAMES):
        session.on_audio(frame, index * 0.02)
    upstream = (time.perf_counter() - started) / FRAMES * 1e6
    packetizer = RtpPacketizer(fmt.payload_type, 1234, 1, 1)
    payload = bytes(fmt.packet_bytes)
    packets = [packetizer.pack(payload, fmt.packet_samples) for _ in range(FRAMES)]
    started = time.perf_counter()
    for index, packet in enumerate(packets):
        session.on_rtp(packet, index * fmt.ptime_ms / 1000)
    downstream = (time.perf_counter() - started) / FRAMES * 1e6
    return upstream, downstream


def run_session_bench() -> int:
    print("| route codec | call rate | Sinch frame -> RTP (µs) | RTP packet -> Sinch (µs) |")
    print("|---|---|---|---|")
    for codec, rate in (("L16", 16000), ("L16", 48000), ("PCMU", 16000), ("PCMU", 8000)):
        upstream, downstream = _per_frame_us(codec, rate)
        print(f"| {codec} | {rate} | {upstream:.2f} | {downstream:.2f} |")
    for codec, rate in (("PCMU", 8000), ("L16", 16000)):  # DTMF detection on: the caller's audio analysed
        upstream, downstream = _per_frame_us(codec, rate, dtmf=101)
        print(f"| {codec} dtmf=101 | {rate} | {upstream:.2f} | {downstream:.2f} |")
    return 0
