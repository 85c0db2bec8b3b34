"""Unusual and hostile peers against the real gateway process (issue 9): each case here once hurt a worker."""

from __future__ import annotations

import asyncio
import struct

from tests.e2e.test_call_path import start_gateway_with
from tests.gateway_process import GatewayProcess, scrape, value
from tests.media_peer import MediaPeer
from tests.sinch_client import SinchCall

RATE = 8000
L16_DYNAMIC_PT = 96
FRAME = bytes(320)  # 20 ms of L16 silence at 8 kHz


def rtp(ssrc: int, seq: int, payload: bytes = FRAME) -> bytes:
    return struct.pack("!BBHII", 0x80, L16_DYNAMIC_PT, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, ssrc) + payload


async def wait_for_metric(gateway, name: str, minimum: float, timeout: float = 10.0, **labels: str) -> None:
    """Until the gateway's /metrics shows `name` at `minimum` or more (its workers flush once a second)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (seen := value(await asyncio.to_thread(scrape, gateway), name, **labels)) < minimum:
        assert asyncio.get_running_loop().time() < deadline, f"{name}{labels} stayed at {seen}, expected {minimum}"
        await asyncio.sleep(0.2)


def test_a_reordered_packet_then_a_new_ssrc_keeps_the_worker_and_the_call():
    """A media service restarting (new SSRC) after one reordered packet reset a counter that metrics are flushed
    from; the flush raised in the worker's housekeeping timer, heartbeats stopped and the supervisor killed the
    worker with every call on it (issue 9.1)."""
    async def scenario() -> None:
        peer = await MediaPeer(echo=False).start()
        gateway = await start_gateway_with(peer.route("bot"))
        try:
            call = await SinchCall.open(gateway.url + "/stream/bot")
            assert await call.connect("restarting-bot", rate=RATE) == {"command": "answer"}
            await call.ws.send(FRAME)
            await peer.wait_until(lambda: peer.gateway_rtp is not None)
            send = peer.rtp_transport.sendto
            for seq in (10, 12, 11, 13):  # one reordered packet
                send(rtp(0xA, seq), peer.gateway_rtp)
            await wait_for_metric(gateway, "gateway_rtp_reordered_packets_total", 1, route="bot")
            for seq in range(500, 510):  # the service restarts: a new SSRC and sequence
                send(rtp(0xB, seq), peer.gateway_rtp)
            await wait_for_metric(gateway, "gateway_rtp_packets_total", 14, route="bot", direction="in")
            for seq in range(510, 515):  # the flush after the restart went through: another one follows
                send(rtp(0xB, seq), peer.gateway_rtp)
            await wait_for_metric(gateway, "gateway_rtp_packets_total", 19, route="bot", direction="in")
            samples = await asyncio.to_thread(scrape, gateway)
            assert sum(value(samples, "gateway_worker_restarts_total", reason=reason)
                       for reason in ("killed", "exited", "stuck", "boot_failed")) == 0
            assert value(samples, "gateway_internal_errors_total", where="metrics") == 0
            await call.ws.send(FRAME)  # the call is whole: audio still reaches the media service
            await peer.wait_until(lambda: len(peer.packets) >= 2)
            await call.ws.close()
        finally:
            peer.close()
            assert await asyncio.to_thread(gateway.stop) == 0

    asyncio.run(scenario())


def test_a_connect_nested_a_thousand_levels_deep_is_rejected_as_malformed():
    """msgspec's decoder raised RecursionError, which escaped the parser: close 1011 with a traceback (issue 9.6)."""
    async def scenario() -> None:
        gateway = await asyncio.to_thread(GatewayProcess().start)
        try:
            call = await SinchCall.open(gateway.url + "/stream/echo")
            await call.ws.send('{"command":"connect","callId":' + "[" * 1000 + "]" * 1000 + "}")
            assert await call.next_command() == {"command": "reject"}
            assert await call.closed() == (1007, "not JSON: nested too deeply")
            await asyncio.to_thread(gateway.wait_for, "call.ended", close_code=1007)
            samples = await asyncio.to_thread(scrape, gateway)
            assert value(samples, "gateway_internal_errors_total", where="websocket_frame") == 0
            assert value(samples, "gateway_calls_total", route="echo", outcome="reject") == 1
        finally:
            assert await asyncio.to_thread(gateway.stop) == 0

    asyncio.run(scenario())
