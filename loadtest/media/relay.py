"""A lossy, delaying UDP relay for RTP/RTCP, put between the gateway and a media service to check that the
harness measures what is injected: it drops every Nth RTP packet (per direction) and delays every packet.

Port P (RTP) and P+1 (RTCP) forward to the target's port Q and Q+1. Each gateway source address gets its
own upstream socket, so the media service's symmetric replies find their way back, and go out from P or P+1
as the gateway expects (symmetric RTP). RTCP is delayed but never dropped: a lost BYE would end no call.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import Counter
from typing import Literal

from loadtest.shared.udp import bind_pair, udp_socket

Direction = Literal["up", "down", "both"]
READS_PER_WAKEUP = 64


class Relay:
    def __init__(self, listen: tuple[str, int], target: tuple[str, int], drop_every: int = 0,
                 delay_ms: float = 0.0, direction: Direction = "both") -> None:
        if drop_every < 0 or drop_every == 1:
            raise ValueError("drop_every: 0 (no drop) or >= 2")
        self.listen = listen
        self.target = target
        self.drop_every = drop_every
        self.delay = delay_ms / 1000
        self.direction = direction
        self.counts: Counter[str] = Counter()
        self._upstream: dict[tuple[bool, tuple[str, int]], socket.socket] = {}

    async def start(self) -> int:
        self._loop = asyncio.get_running_loop()
        host, port = self.listen
        self.front_rtp, self.front_rtcp = bind_pair(host, port)
        for front, is_rtcp in ((self.front_rtp, False), (self.front_rtcp, True)):
            self._loop.add_reader(front.fileno(), self._from_gateway, front, is_rtcp)
        self.port = self.front_rtp.getsockname()[1]
        return self.port

    def close(self) -> None:
        for sock in (self.front_rtp, self.front_rtcp, *self._upstream.values()):
            self._loop.remove_reader(sock.fileno())
            sock.close()

    def _from_gateway(self, front: socket.socket, is_rtcp: bool) -> None:
        host, port = self.target
        destination = (host, port + 1 if is_rtcp else port)
        for _ in range(READS_PER_WAKEUP):
            try:
                data, source = front.recvfrom(65535)
            except OSError:
                return
            upstream = self._upstream.get((is_rtcp, source))
            if upstream is None:
                upstream = udp_socket(self.listen[0], 0)
                self._upstream[(is_rtcp, source)] = upstream
                self._loop.add_reader(upstream.fileno(), self._from_media, upstream, front, source, is_rtcp)
            self._forward(data, upstream, destination, "up", is_rtcp)

    def _from_media(self, upstream: socket.socket, front: socket.socket, gateway: tuple[str, int],
                    is_rtcp: bool) -> None:
        for _ in range(READS_PER_WAKEUP):
            try:
                data, _ = upstream.recvfrom(65535)
            except OSError:
                return
            self._forward(data, front, gateway, "down", is_rtcp)

    def _forward(self, data: bytes, sock: socket.socket, address: tuple[str, int], direction: str,
                 is_rtcp: bool) -> None:
        kind = "rtcp" if is_rtcp else "rtp"
        self.counts[f"{kind}_{direction}"] += 1
        dropping = not is_rtcp and self.drop_every and self.direction in (direction, "both")
        if dropping and self.counts[f"rtp_{direction}"] % self.drop_every == 0:
            self.counts[f"dropped_{direction}"] += 1
            return
        if self.delay:
            self._loop.call_later(self.delay, _send, sock, data, address)
        else:
            _send(sock, data, address)


def _send(sock: socket.socket, data: bytes, address: tuple[str, int]) -> None:
    with contextlib.suppress(OSError):  # closed in the meantime, or ICMP unreachable: UDP loses it
        sock.sendto(data, address)
