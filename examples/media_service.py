"""A minimal voice-bot media service for the gateway, standard library only: it plays a prompt to each call,
asks the gateway (RTCP APP MARK) to say when the prompt has been heard, barges in (RTCP APP CLER) when the
caller talks over it, and hears the caller's key presses (RFC 4733 telephone events). Copy it as a starting point;
docs/protocol.md describes every packet it uses.

    python examples/media_service.py --listen 127.0.0.1:5004 --rate 16000
    gateway serve --route 'bot=rtp://127.0.0.1:5004?dtmf=101'

It prints one JSON line per event: call.started, mark.played, mark.cleared, barge_in, dtmf, call.ended.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import struct
import sys
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field

RTP_HEADER = struct.Struct("!BBHII")  # RFC 3550 §5.1, no CSRC, no extension
RTCP_APP = struct.Struct("!BBHI4s")  # RFC 3550 §6.7
RTCP_APP_TYPE, RTCP_BYE_TYPE = 204, 203
MARK_ID_AND_TIMESTAMP = struct.Struct("!II")
TELEPHONE_EVENT = struct.Struct("!BBH")  # RFC 4733 §2.3: event, E|R|volume, duration
DTMF_KEYS = "0123456789*#ABCD"  # by event code (RFC 4733 §3.2)
PLAYED, CLEARED = 1, 2
FRAME_SECONDS = 0.02


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def app_packet(ssrc: int, name: bytes, data: bytes, subtype: int = 0) -> bytes:
    return RTCP_APP.pack(0x80 | subtype, RTCP_APP_TYPE, 2 + len(data) // 4, ssrc, name) + data


def tone(rate: int, seconds: float, frequency: float = 440.0) -> bytes:
    """The prompt: L16 big-endian (RFC 3551 §4.5.11), as the route's RTP carries it."""
    samples = array("h", (int(8000 * math.sin(2 * math.pi * frequency * n / rate)) for n in range(int(rate * seconds))))
    if sys.byteorder == "little":
        samples.byteswap()
    return samples.tobytes()


def loudness(payload: bytes) -> float:
    """RMS of an L16 big-endian payload."""
    samples = array("h", payload[: len(payload) & ~1])
    if sys.byteorder == "little":
        samples.byteswap()
    return math.sqrt(sum(s * s for s in samples) / max(len(samples), 1))


@dataclass
class Call:
    """One call, known by the gateway's RTP address (the call's own port pair)."""

    rtp_address: tuple[str, int]
    payload_type: int
    ssrc: int = field(default_factory=lambda: random.getrandbits(32))
    sequence: int = field(default_factory=lambda: random.getrandbits(16))
    timestamp: int = field(default_factory=lambda: random.getrandbits(32))
    prompt: asyncio.Task[None] | None = None
    prompt_end: int = 0  # the RTP timestamp of the prompt's last sample: its mark and its barge-in point
    last_key: int = -1  # the RTP timestamp of the last key press reported (its end packet comes three times)

    @property
    def rtcp_address(self) -> tuple[str, int]:
        return self.rtp_address[0], self.rtp_address[1] + 1


class MediaService:
    def __init__(self, rate: int, prompt_seconds: float, barge_in_level: float, dtmf: int) -> None:
        self.rate = rate
        self.dtmf = dtmf
        self.prompt = tone(rate, prompt_seconds)
        self.barge_in_level = barge_in_level
        self.calls: dict[tuple[str, int], Call] = {}
        self.rtp: asyncio.DatagramTransport
        self.rtcp: asyncio.DatagramTransport

    def on_rtp(self, data: bytes, address: tuple[str, int]) -> None:
        if len(data) < RTP_HEADER.size:
            return
        payload_type = data[1] & 0x7F
        call = self.calls.get(address)
        if payload_type == self.dtmf:
            if call is not None:
                self.on_key(call, data)
        elif call is None:
            call = self.calls[address] = Call(address, payload_type)
            emit("call.started", gateway=f"{address[0]}:{address[1]}")
            call.prompt = asyncio.ensure_future(self.play_prompt(call))
        elif call.prompt and not call.prompt.done() and loudness(data[RTP_HEADER.size:]) > self.barge_in_level:
            self.barge_in(call)

    def on_key(self, call: Call, data: bytes) -> None:
        """A telephone event (same SSRC and clock as the call's audio): reported once, at its end (E bit)."""
        timestamp = struct.unpack_from("!I", data, 4)[0]
        event, flags, duration = TELEPHONE_EVENT.unpack_from(data, RTP_HEADER.size)
        if flags & 0x80 and timestamp != call.last_key and event < len(DTMF_KEYS):
            call.last_key = timestamp
            emit("dtmf", key=DTMF_KEYS[event], seconds=duration / self.rate)

    async def play_prompt(self, call: Call) -> None:
        """The prompt at real time, 20 ms per packet; the mark sent first names its last sample."""
        frame = int(self.rate * FRAME_SECONDS) * 2
        call.prompt_end = (call.timestamp + len(self.prompt) // 2 - 1) & 0xFFFFFFFF
        self.rtcp.sendto(app_packet(call.ssrc, b"MARK", MARK_ID_AND_TIMESTAMP.pack(1, call.prompt_end)),
                         call.rtcp_address)
        for offset in range(0, len(self.prompt), frame):
            chunk = self.prompt[offset:offset + frame]
            header = RTP_HEADER.pack(0x80, call.payload_type, call.sequence, call.timestamp, call.ssrc)
            self.rtp.sendto(header + chunk, call.rtp_address)
            call.sequence = (call.sequence + 1) & 0xFFFF
            call.timestamp = (call.timestamp + len(chunk) // 2) & 0xFFFFFFFF
            await asyncio.sleep(FRAME_SECONDS)

    def barge_in(self, call: Call) -> None:
        """The caller talks over the prompt: stop sending it and drop all of it, in flight or queued."""
        assert call.prompt is not None
        call.prompt.cancel()
        self.rtcp.sendto(app_packet(call.ssrc, b"CLER", struct.pack("!I", call.prompt_end)), call.rtcp_address)
        emit("barge_in", gateway=f"{call.rtp_address[0]}:{call.rtp_address[1]}")

    def on_rtcp(self, data: bytes, address: tuple[str, int]) -> None:
        call = self.calls.get((address[0], address[1] - 1))
        offset = 0
        while call and offset + 4 <= len(data):  # each packet of a compound packet (RFC 3550 §6.1)
            first, packet_type, length = struct.unpack_from("!BBH", data, offset)
            body = data[offset + 4:offset + 4 + 4 * length]
            if packet_type == RTCP_APP_TYPE and body[4:8] == b"MARK" and first & 0x1F in (PLAYED, CLEARED):
                mark_id, _ = MARK_ID_AND_TIMESTAMP.unpack(body[8:16])
                emit("mark.played" if first & 0x1F == PLAYED else "mark.cleared", mark_id=mark_id)
            elif packet_type == RTCP_BYE_TYPE:
                if call.prompt:
                    call.prompt.cancel()
                del self.calls[call.rtp_address]
                emit("call.ended", gateway=f"{call.rtp_address[0]}:{call.rtp_address[1]}")
                return
            offset += 4 + 4 * length


class Endpoint(asyncio.DatagramProtocol):
    def __init__(self, handler: Callable[[bytes, tuple[str, int]], None]) -> None:
        self.handler = handler

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.handler(data, addr)


async def serve(host: str, port: int, service: MediaService) -> None:
    loop = asyncio.get_running_loop()
    service.rtp, _ = await loop.create_datagram_endpoint(lambda: Endpoint(service.on_rtp), local_addr=(host, port))
    service.rtcp, _ = await loop.create_datagram_endpoint(lambda: Endpoint(service.on_rtcp),
                                                          local_addr=(host, port + 1))
    emit("listening", rtp=f"{host}:{port}")
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:5004", help="HOST:PORT for RTP (RTCP on PORT+1)")
    parser.add_argument("--rate", type=int, default=16000, help="the route's L16 clock rate")
    parser.add_argument("--prompt-seconds", type=float, default=3.0)
    parser.add_argument("--barge-in-level", type=float, default=2000.0, help="caller RMS that interrupts")
    parser.add_argument("--dtmf", type=int, default=101, help="the route's dtmf payload type")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(host, int(port), MediaService(args.rate, args.prompt_seconds, args.barge_in_level,
                                                                     args.dtmf)))


if __name__ == "__main__":
    main()
