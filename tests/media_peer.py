"""A downstream media service for tests: an RTP/RTCP port pair on loopback that records, and optionally echoes."""

from __future__ import annotations

import asyncio
import socket

from gateway.core.rtp import RtpPacket, parse_rtcp, parse_rtp
from gateway.dataplane.ports import bind_udp_pair


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, peer: MediaPeer, rtcp: bool) -> None:
        self.peer = peer
        self.rtcp = rtcp

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.peer.received(data, addr, self.rtcp)


class MediaPeer:
    def __init__(self, echo: bool = True) -> None:
        self.echo = echo
        self.packets: list[RtpPacket] = []
        self.datagrams: list[bytes] = []  # the RTP as received, for outside decoders
        self.rtcp: list[list] = []
        self.gateway_rtp: tuple[str, int] | None = None
        self.gateway_rtcp: tuple[str, int] | None = None
        self._arrivals = asyncio.Condition()

    async def start(self, port: int | None = None) -> MediaPeer:
        """On a free port pair, or on `port` (a restart where a closed peer was)."""
        loop = asyncio.get_running_loop()
        rtp, rtcp = bind_udp_pair(socket.AF_INET, "127.0.0.1", (port, port + 1) if port else (50000, 59999))
        self.port = rtp.getsockname()[1]
        self.rtp_transport, _ = await loop.create_datagram_endpoint(lambda: _Endpoint(self, False), sock=rtp)
        self.rtcp_transport, _ = await loop.create_datagram_endpoint(lambda: _Endpoint(self, True), sock=rtcp)
        return self

    def route(self, name: str, query: str = "") -> str:
        return f"{name}=rtp://127.0.0.1:{self.port}" + (f"?{query}" if query else "")

    def received(self, data: bytes, addr: tuple[str, int], rtcp: bool) -> None:
        if rtcp:
            self.gateway_rtcp = addr
            self.rtcp.append(parse_rtcp(data))
        else:
            self.gateway_rtp = addr
            self.datagrams.append(data)
            self.packets.append(parse_rtp(data))
            if self.echo:
                self.rtp_transport.sendto(data, addr)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._arrivals:
            self._arrivals.notify_all()

    async def wait_until(self, predicate, timeout: float = 5.0) -> None:
        async def wait() -> None:
            async with self._arrivals:
                await self._arrivals.wait_for(predicate)
        await asyncio.wait_for(wait(), timeout)

    def close(self) -> None:
        self.rtp_transport.close()
        self.rtcp_transport.close()
