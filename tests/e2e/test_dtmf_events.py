"""DTMF end to end: a caller's audio carrying ffmpeg-made key presses goes through the real gateway process to a
media service on a route with `dtmf=101`; tshark (Wireshark's RFC 4733 `rtpevent` dissector, not our code) decodes
the telephone events it received, and the call events and the metric say the same digits."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.aio import run
from tests.dtmf_tones import FFMPEG, NOISE_DBM0, ffmpeg_pcm, sequence, white_noise
from tests.e2e.test_call_events import EventReceiver
from tests.gateway_process import GatewayProcess, scrape, value
from tests.media_peer import MediaPeer
from tests.sinch_client import SinchCall

TSHARK = shutil.which("tshark")
TEXT2PCAP = shutil.which("text2pcap")
pytestmark = pytest.mark.skipif(None in (FFMPEG, TSHARK, TEXT2PCAP),
                                reason="ffmpeg and tshark not installed (scripts/test installs them)")

EVENT_PT = 101
KEYS, PRESS, PAUSE, FIRST = "1#9D", 0.1, 0.1, 0.1  # seconds
RFC_4733_DIGITS = "0123456789*#ABCD"  # event code -> key (RFC 4733 §3.2)
FIELDS = ("rtp.ssrc", "rtp.seq", "rtp.timestamp", "rtp.marker", "rtp.p_type", "rtpevent.event_id",
          "rtpevent.end_of_event", "rtpevent.duration")


def tshark_rtp(datagrams: list[bytes], port: int, folder: Path) -> list[dict[str, str]]:
    """The datagrams as tshark decodes them (RTP on `port`, PT 101 as telephone events): one dict a packet."""
    dump = folder / "rtp.txt"
    with dump.open("w") as out:  # text2pcap's input: hex dump lines with offsets, one packet each from 0
        for data in datagrams:
            for at in range(0, len(data), 16):
                out.write(f"{at:06x} {data[at:at + 16].hex(' ')}\n")
    pcap = folder / "rtp.pcap"
    subprocess.run([TEXT2PCAP, "-q", "-u", f"{port + 1000},{port}", str(dump), str(pcap)], check=True, timeout=30)
    fields = [argument for field in FIELDS for argument in ("-e", field)]
    lines = subprocess.run(
        [TSHARK, "-r", str(pcap), "-d", f"udp.port=={port},rtp", "-d", f"rtp.pt=={EVENT_PT},rtpevent", "-T",
         "fields", "-E", "separator=;", *fields], check=True, capture_output=True, text=True, timeout=60,
    ).stdout.splitlines()
    return [dict(zip(FIELDS, line.split(";"), strict=True)) for line in lines]


@pytest.mark.parametrize(("rate", "codec", "wire_rate"), [(8000, "PCMU", 8000), (16000, "L16", 16000)])
def test_key_presses_reach_the_media_service_as_rfc_4733_events(tmp_path, rate, codec, wire_rate):
    terms, length = sequence(KEYS, PRESS, PAUSE, first=FIRST)
    pcm = ffmpeg_pcm([*terms, white_noise(NOISE_DBM0)], rate, length)
    receiver = EventReceiver().start()

    async def scenario() -> tuple[MediaPeer, GatewayProcess]:
        peer = await MediaPeer(echo=False).start()
        try:
            gateway = await asyncio.to_thread(GatewayProcess(
                "--route", peer.route("ivr", f"codec={codec}&dtmf={EVENT_PT}"), "--call-events-url",
                receiver.url).start)
            call = await SinchCall.open(gateway.url + "/stream/ivr")
            await call.connect("dtmf-call", rate=rate)
            await call.send_paced(pcm, rate)
            ends = len(KEYS) * 3  # each end packet three times
            await peer.wait_until(lambda: sum(1 for packet in peer.packets if packet.payload_type == EVENT_PT
                                              and packet.payload[1] & 0x80) >= ends)
            await call.ws.close()
        finally:
            peer.close()
        return peer, gateway

    peer, gateway = run(scenario())
    try:
        call_events = [event for event in receiver.wait_for(1 + len(KEYS)) if event["event"] == "dtmf"]
        gateway.wait_for("call.ended", call_id="dtmf-call")
        digits_counted = value(scrape(gateway), "gateway_dtmf_digits_total", route="ivr")
    finally:
        gateway.stop()

    decoded = tshark_rtp(peer.datagrams, peer.port, tmp_path)
    audio = [packet for packet in decoded if packet["rtp.p_type"] != str(EVENT_PT)]
    events: dict[str, list[dict[str, str]]] = {}
    for packet in decoded:
        if packet["rtp.p_type"] == str(EVENT_PT):
            events.setdefault(packet["rtp.timestamp"], []).append(packet)
    assert {packet["rtp.ssrc"] for packet in decoded} == {audio[0]["rtp.ssrc"]}  # one stream
    sequences = [int(packet["rtp.seq"]) for packet in decoded]
    assert sequences == [(sequences[0] + i) % 65536 for i in range(len(decoded))]  # one sequence space
    assert "".join(RFC_4733_DIGITS[int(packets[0]["rtpevent.event_id"])] for packets in events.values()) == KEYS
    for i, (timestamp, packets) in enumerate(events.items()):
        start = (int(timestamp) - int(audio[0]["rtp.timestamp"])) % 2**32 / wire_rate
        assert start == pytest.approx(FIRST + i * (PRESS + PAUSE), abs=0.01)
        assert [packet["rtp.marker"] for packet in packets] == ["1"] + ["0"] * (len(packets) - 1)
        ends = [packet for packet in packets if packet["rtpevent.end_of_event"] == "1"]
        assert len(ends) == 3 and ends == packets[-3:]  # RFC 4733 §2.5.1.4: the end three times, last
        assert {packet["rtpevent.duration"] for packet in ends} == {ends[0]["rtpevent.duration"]}
        assert int(ends[0]["rtpevent.duration"]) / wire_rate == pytest.approx(PRESS, abs=0.01)
    assert [event["digit"] for event in call_events] == list(KEYS)
    assert all(event["call_id"] == "dtmf-call" and event["route"] == "ivr" for event in call_events)
    assert [event["duration"] for event in call_events] == pytest.approx([PRESS] * len(KEYS), abs=0.01)
    assert digits_counted == len(KEYS)
