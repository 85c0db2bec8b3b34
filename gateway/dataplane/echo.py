"""The embedded media service: reflects every RTP packet to its sender over a real UDP hop.

It is the default route `echo`, so `gateway serve` alone answers calls and proves the whole path
(websocket -> RTP -> UDP -> RTP -> websocket). RTCP on the next port is read and discarded.
"""

from __future__ import annotations

import asyncio
import socket

from gateway.dataplane.ports import bind_udp_pair

# One socket carries every call of the worker: give it room for bursts (the kernel caps it at rmem_max).
ECHO_RCVBUF = 4 * 1024 * 1024


class _Reflect(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)


class _Discard(asyncio.DatagramProtocol):
    pass


class EchoService:
    def __init__(self, host: str = "127.0.0.1", port_range: tuple[int, int] = (40000, 49999)) -> None:
        self.host = host
        self.port_range = port_range
        self.port = 0
        self._transports: list[asyncio.BaseTransport] = []

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        rtp, rtcp = bind_udp_pair(family, self.host, self.port_range, ECHO_RCVBUF)
        self.port = rtp.getsockname()[1]
        for sock, protocol in ((rtp, _Reflect), (rtcp, _Discard)):
            transport, _ = await loop.create_datagram_endpoint(protocol, sock=sock)
            self._transports.append(transport)
        return self.port

    def close(self) -> None:
        for transport in self._transports:
            transport.close()
