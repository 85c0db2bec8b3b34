"""The naive baseline: the same bridge as the gateway, written the straightforward way.

Websocket in (the `websockets` library on plain asyncio), one coroutine per call, RTP to a media service
and back, and 20 ms frames paced back to the websocket by a per-call sleep loop. It speaks enough of the
protocol for the load generator (connect -> answer, audio both ways, RTCP SR with CNAME, BYE at hangup)
and nothing more: no jitter buffer, no resampling, no limits. It exists only so that the benchmark can
compare the gateway with what a first implementation costs, on the same machine, in the same run.

    python -m loadtest.bench.baselines.naive_bridge --listen 127.0.0.1:9000 --media 127.0.0.1:40100
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import secrets
import signal
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from loadtest.shared import rtp
from loadtest.shared.udp import parse_host_port

FRAME_SECONDS = 0.020
DYNAMIC_PT = 96


class RtpReceiver(asyncio.DatagramProtocol):
    """Queues the payload of every RTP packet from the media service."""

    def __init__(self, queue: asyncio.Queue[bytes]) -> None:
        self.queue = queue

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        header = rtp.parse_header(data)
        if header is not None:
            self.queue.put_nowait(data[header.payload_offset:])


def swap_bytes(pcm: bytes) -> bytes:
    """16-bit little-endian <-> big-endian (Sinch PCM <-> RTP L16)."""
    samples = array.array("h", pcm[: len(pcm) // 2 * 2])
    samples.byteswap()
    return samples.tobytes()


async def handle_call(ws: ServerConnection, media: tuple[str, int]) -> None:
    connect = json.loads(await ws.recv())
    query = parse_qs(urlsplit(ws.request.path).query)
    rate = int(connect.get("sampleRate") or query.get("rate", ["8000"])[0])
    call_id = str(connect.get("callId") or connect.get("CallId") or "")
    await ws.send(json.dumps({"command": "answer"}))

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    rtp_transport, _ = await loop.create_datagram_endpoint(lambda: RtpReceiver(queue), remote_addr=media)
    rtcp_transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                            remote_addr=(media[0], media[1] + 1))
    ssrc, seq, timestamp = secrets.randbits(32), secrets.randbits(16), secrets.randbits(32)
    pacer = asyncio.create_task(pace(ws, queue, round(rate * FRAME_SECONDS) * 2))
    packets = 0
    try:
        async for message in ws:
            if isinstance(message, str):
                continue  # no commands to act on after the answer
            payload = swap_bytes(message)
            rtp_transport.sendto(rtp.pack_header(DYNAMIC_PT, packets == 0, seq + packets, timestamp, ssrc) + payload)
            timestamp += len(payload) // 2
            packets += 1
            if packets == 1:
                rtcp_transport.sendto(rtp.sender_report(ssrc, timestamp, packets, len(payload), call_id))
    except ConnectionClosed:
        pass  # a hangup without a clean close is still a hangup
    finally:
        pacer.cancel()
        rtcp_transport.sendto(rtp.bye(ssrc, call_id))
        rtp_transport.close()
        rtcp_transport.close()


async def pace(ws: ServerConnection, queue: asyncio.Queue[bytes], frame_bytes: int) -> None:
    """Every 20 ms, send one frame of what the media service sent back, if a whole one is there."""
    loop = asyncio.get_running_loop()
    buffer = bytearray()
    next_at = loop.time()
    while True:
        next_at += FRAME_SECONDS
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        while not queue.empty():
            buffer += swap_bytes(queue.get_nowait())
        if len(buffer) >= frame_bytes:
            frame = bytes(buffer[:frame_bytes])
            del buffer[:frame_bytes]
            try:
                await ws.send(frame)
            except ConnectionClosed:
                return


async def main(listen: tuple[str, int], media: tuple[str, int]) -> None:
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    async with serve(lambda ws: handle_call(ws, media), *listen, compression=None, max_size=2**20) as server:
        port = server.sockets[0].getsockname()[1]
        print(json.dumps({"event": "naive.listening", "port": port}), flush=True)
        await stopped.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:9000")
    parser.add_argument("--media", required=True, help="HOST:PORT of the RTP media service")
    args = parser.parse_args()
    asyncio.run(main(parse_host_port(args.listen), parse_host_port(args.media)))
