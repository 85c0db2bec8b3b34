"""The media simulators: downstream RTP services the gateway sends each call to.

- echo: reflects every RTP packet to its source, from the port it arrived at (symmetric RTP);
- sink: only records;
- talker: sends audio back at real time to every source it has heard from, as a voice bot would.

All three keep per-SSRC continuity (StreamStats), learn each stream's CallId from the RTCP CNAME, record
the upstream latency of marked frames, and honour a media-side hangup requested in the CallId
(`...~bye=MS`: send RTCP BYE MS milliseconds after the stream's first packet). Usable in-process
(`await MediaSimulator("echo").start()`) or as `python -m loadtest media KIND --listen HOST:PORT`.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from typing import Any

from loadtest.media.streams import StreamStats, summarize
from loadtest.media.talker import Talker
from loadtest.shared import rtp
from loadtest.shared.histogram import Histogram
from loadtest.shared.udp import bind_pair

KINDS = ("echo", "sink", "talker")
READS_PER_WAKEUP = 64
TIMER_SECONDS = 0.005  # drives the talker and scheduled BYEs
BYE_REQUEST = re.compile(r"~bye=(\d+)")


class MediaSimulator:
    def __init__(self, kind: str, host: str = "127.0.0.1", port: int = 0) -> None:
        if kind not in KINDS:
            raise ValueError(f"media kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self.host = host
        self.port = port
        self.reset()

    def reset(self) -> None:
        """Forget every stream and count from zero (between benchmark rounds)."""
        self.streams: dict[int, StreamStats] = {}
        self.upstream = Histogram()
        self.counts = {"echoed": 0, "malformed": 0, "rtcp_packets": 0, "byes_received": 0, "byes_sent": 0}
        self._byes: dict[int, tuple[int, tuple[str, int]]] = {}  # ssrc -> (due ns, gateway RTCP address)
        self._talker: Talker | None = None

    async def start(self) -> int:
        return self.open()

    def open(self) -> int:
        """Bind and serve on the running loop; again after `close` (a restarted service), on the port it had,
        keeping its counts. The port."""
        loop = asyncio.get_running_loop()
        self.rtp, self.rtcp = bind_pair(self.host, self.port)
        self.port = self.rtp.getsockname()[1]
        if self._talker is not None:
            self._talker.sock = self.rtp
        loop.add_reader(self.rtp.fileno(), self._read_rtp)
        loop.add_reader(self.rtcp.fileno(), self._read_rtcp)
        self._timer = loop.call_later(TIMER_SECONDS, self._tick)
        return self.port

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer.cancel()
        for sock in (self.rtp, self.rtcp):
            loop.remove_reader(sock.fileno())
            sock.close()

    def summary(self) -> dict[str, Any]:
        return pooled_summary([self])

    def _read_rtp(self) -> None:
        sock = self.rtp
        streams = self.streams
        for _ in range(READS_PER_WAKEUP):
            try:
                data, source = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # ICMP error of an earlier send: nothing to read now
            now = time.monotonic_ns()
            header = rtp.parse_header(data)
            if header is None:
                self.counts["malformed"] += 1
                continue
            stream = streams.get(header.ssrc)
            if stream is None:
                stream = streams[header.ssrc] = StreamStats(header.ssrc, source, header.payload_type, now)
            stream.on_packet(header.sequence, header.timestamp, memoryview(data)[header.payload_offset:], now,
                             self.upstream)
            if self.kind == "echo":
                try:
                    sock.sendto(data, source)
                    self.counts["echoed"] += 1
                except OSError:
                    pass  # the gateway's socket is gone (call ended): UDP just loses it
            elif self.kind == "talker":
                if self._talker is None:
                    self._talker = Talker(sock)
                self._talker.heard(stream, header, now)

    def _read_rtcp(self) -> None:
        for _ in range(READS_PER_WAKEUP):
            try:
                data, source = self.rtcp.recvfrom(65535)
            except OSError:
                return
            self.counts["rtcp_packets"] += 1
            info = rtp.parse_rtcp(data)
            stream = self.streams.get(info.ssrc) if info.ssrc is not None else None
            if stream is None:
                continue
            if info.cname and stream.cname is None:
                stream.cname = info.cname
                if (match := BYE_REQUEST.search(info.cname)) and not stream.ended:
                    self._byes[stream.ssrc] = (stream.first_arrival_ns + int(match[1]) * 1_000_000, source)
            if info.bye:
                stream.ended = True
                self.counts["byes_received"] += 1
                self._byes.pop(stream.ssrc, None)

    def _tick(self) -> None:
        now = time.monotonic_ns()
        for ssrc, (due, address) in tuple(self._byes.items()):
            if now >= due:
                del self._byes[ssrc]
                stream = self.streams[ssrc]
                try:
                    self.rtcp.sendto(rtp.bye(secrets.randbits(32), stream.cname or ""), address)
                    self.counts["byes_sent"] += 1
                except OSError:
                    pass
        if self._talker is not None:
            self._talker.tick(now)
        self._timer = asyncio.get_running_loop().call_later(TIMER_SECONDS, self._tick)


def pooled_summary(simulators: list[MediaSimulator]) -> dict[str, Any]:
    """One summary over several simulators (the targets of one route), as of one media service."""
    upstream = Histogram()
    for simulator in simulators:
        upstream.merge(simulator.upstream)
    first = simulators[0]
    counts = {key: sum(simulator.counts[key] for simulator in simulators) for key in first.counts}
    talked = sum(simulator._talker.packets_sent for simulator in simulators if simulator._talker)
    streams = [stream for simulator in simulators for stream in simulator.streams.values()]
    return summarize(streams, upstream, {"kind": first.kind, "port": first.port,
                                         "ports": [simulator.port for simulator in simulators], "talked": talked,
                                         **counts})
