"""The talker's outgoing streams: audio back to every source it has heard from, at real time, as a bot would.

It learns each stream's packet duration and samples per packet from what arrives (there is no SDP), then
sends packets of the same size and payload type from its own SSRC, until the stream sends BYE or goes
quiet. Payload is the speech loop in network byte order (for G.711 routes the same bytes read as µ-law or
A-law: noise-like, but audio all the same)."""

from __future__ import annotations

import secrets
import socket

from loadtest.media.streams import StreamStats
from loadtest.shared import rtp
from loadtest.shared.audio import speech_loop

LEARN_PACKETS = 10  # arrivals averaged to learn the packet duration
PTIMES_MS = (5, 10, 20, 30, 40, 60)
QUIET_NS = 2_000_000_000  # a stream silent this long is over
MAX_BURST = 5


class _Outgoing:
    __slots__ = ("address", "due_ns", "interval_ns", "offset", "payload_type", "samples", "seq", "size", "ssrc",
                 "stream", "timestamp")

    def __init__(self, stream: StreamStats, payload_type: int, size: int, samples: int, interval_ns: int,
                 now: int) -> None:
        self.stream = stream
        self.address = stream.source
        self.payload_type = payload_type
        self.size = size
        self.samples = samples
        self.interval_ns = interval_ns
        self.ssrc = secrets.randbits(32)
        self.seq = secrets.randbits(16)
        self.timestamp = secrets.randbits(32)
        self.offset = 0
        self.due_ns = now


class Talker:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.audio = memoryview(_network_order(speech_loop(16000, 0)))
        self.outgoing: dict[int, _Outgoing] = {}
        self.packets_sent = 0
        self._learning: dict[int, list[int]] = {}  # ssrc -> arrival times of its first packets

    def heard(self, stream: StreamStats, header: rtp.RtpHeader, now: int) -> None:
        if stream.ssrc in self.outgoing or stream.ended:
            return
        arrivals = self._learning.setdefault(stream.ssrc, [])
        arrivals.append(now)
        if len(arrivals) < LEARN_PACKETS:
            return
        del self._learning[stream.ssrc]
        interval_ms = (arrivals[-1] - arrivals[0]) / (len(arrivals) - 1) / 1e6
        ptime = min(PTIMES_MS, key=lambda ms: abs(ms - interval_ms))
        size = stream.payload_bytes
        samples = size if header.payload_type in (0, 8) else size // 2
        self.outgoing[stream.ssrc] = _Outgoing(stream, header.payload_type, size, samples, ptime * 1_000_000, now)

    def tick(self, now: int) -> None:
        for key, out in tuple(self.outgoing.items()):
            if out.stream.ended or now - out.stream.last_arrival_ns > QUIET_NS:
                del self.outgoing[key]
                continue
            burst = 0
            while out.due_ns <= now and burst < MAX_BURST:
                self._send(out)
                out.due_ns += out.interval_ns
                burst += 1
            if out.due_ns <= now:  # fell behind: real time wins over sending everything
                out.due_ns = now + out.interval_ns

    def _send(self, out: _Outgoing) -> None:
        start = out.offset
        if start + out.size > len(self.audio):
            start = 0
        out.offset = start + out.size
        packet = rtp.pack_header(out.payload_type, False, out.seq, out.timestamp, out.ssrc) + self.audio[
            start:start + out.size]
        out.seq = (out.seq + 1) & 0xFFFF
        out.timestamp = (out.timestamp + out.samples) & 0xFFFFFFFF
        try:
            self.sock.sendto(packet, out.address)
            self.packets_sent += 1
        except OSError:
            pass  # the call's socket is gone


def _network_order(pcm: bytes) -> bytes:
    swapped = bytearray(pcm)
    swapped[0::2], swapped[1::2] = pcm[1::2], pcm[0::2]
    return bytes(swapped)
