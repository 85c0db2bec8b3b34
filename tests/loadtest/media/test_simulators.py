"""The media simulators and the relay over real loopback sockets, in-process (no gateway)."""

import asyncio
import socket

import pytest

from loadtest.media.relay import Relay
from loadtest.media.simulator import MediaSimulator
from loadtest.shared import rtp

TIMEOUT = 5.0


class Peer(asyncio.DatagramProtocol):
    """A stand-in for the gateway's per-call RTP (or RTCP) socket."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait(data)


async def open_peer() -> tuple[asyncio.DatagramTransport, Peer]:
    loop = asyncio.get_running_loop()
    return await loop.create_datagram_endpoint(Peer, local_addr=("127.0.0.1", 0), family=socket.AF_INET)


def packet(seq: int, payload: bytes = bytes(640)) -> bytes:
    return rtp.pack_header(96, seq == 0, seq, 320 * seq, 0xABCDEF) + payload


def test_echo_reflects_to_the_source_and_sends_the_requested_bye():
    async def scenario() -> None:
        echo = MediaSimulator("echo")
        port = await echo.start()
        rtp_out, rtp_peer = await open_peer()
        rtcp_out, rtcp_peer = await open_peer()
        for seq in range(3):
            rtp_out.sendto(packet(seq), ("127.0.0.1", port))
        for seq in range(3):
            assert await asyncio.wait_for(rtp_peer.received.get(), TIMEOUT) == packet(seq)
        # The CallId asks the media side to hang up 1 ms after the first packet: it answers with BYE.
        rtcp_out.sendto(rtp.sender_report(0xABCDEF, 640, 3, 1920, "lt-x-1~bye=1"), ("127.0.0.1", port + 1))
        info = rtp.parse_rtcp(await asyncio.wait_for(rtcp_peer.received.get(), TIMEOUT))
        assert info.bye
        summary = echo.summary()
        assert (summary["streams"], summary["packets"], summary["echoed"], summary["byes_sent"]) == (1, 3, 3, 1)
        assert summary["streams_with_cname"] == 1
        for transport in (rtp_out, rtcp_out):
            transport.close()
        echo.close()

    asyncio.run(scenario())


def test_talker_answers_each_source_at_the_learned_packet_size():
    async def scenario() -> None:
        talker = MediaSimulator("talker")
        port = await talker.start()
        out, peer = await open_peer()
        for seq in range(10):  # the talker learns ptime and size from what arrives
            out.sendto(packet(seq), ("127.0.0.1", port))
            await asyncio.sleep(0.02)  # real-time pacing of the source, not synchronisation
        replies = [await asyncio.wait_for(peer.received.get(), TIMEOUT) for _ in range(3)]
        headers = [rtp.parse_header(r) for r in replies]
        assert all(len(r) == 12 + 640 and h.payload_type == 96 for r, h in zip(replies, headers, strict=True))
        assert [h.sequence - headers[0].sequence for h in headers] == [0, 1, 2]
        assert [h.timestamp - headers[0].timestamp for h in headers] == [0, 320, 640]
        assert headers[0].ssrc != 0xABCDEF
        out.close()
        talker.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("direction", ["up", "down"])
def test_relay_drops_every_nth_packet_in_one_direction(direction):
    async def scenario() -> None:
        echo = MediaSimulator("echo")
        echo_port = await echo.start()
        relay = Relay(("127.0.0.1", 0), ("127.0.0.1", echo_port), drop_every=4, direction=direction)
        relay_port = await relay.start()
        out, peer = await open_peer()
        for seq in range(13):
            out.sendto(packet(seq), ("127.0.0.1", relay_port))
            if (seq + 1) % 4:  # the 4th, 8th and 12th are dropped, on the way up or back; wait for the others
                got = rtp.parse_header(await asyncio.wait_for(peer.received.get(), TIMEOUT))
                assert got.sequence == seq
        assert relay.counts[f"dropped_{direction}"] == 3
        assert echo.summary()["packets"] == (10 if direction == "up" else 13)
        out.close()
        relay.close()
        echo.close()

    asyncio.run(scenario())
