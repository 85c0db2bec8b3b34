"""RFC 4733 telephone events from the DTMF in a call's audio: the payload layout, and the packets a relay sends
for ffmpeg-generated digits (timestamps, durations, marker, E bit, the end sent three times, long events)."""

from __future__ import annotations

import struct

import pytest

from gateway.core.rtp import RtpPacket, RtpPacketizer, parse_rtp
from gateway.core.telephone_event import DtmfRelay, telephone_event_payload
from tests.dtmf_tones import FFMPEG, NOISE_DBM0, ffmpeg_pcm, sequence, white_noise

pytestmark = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed (scripts/test installs it)")

EVENT_PT = 101
SSRC, FIRST_SEQUENCE, FIRST_TIMESTAMP = 0x5EED, 65530, 2**32 - 1000  # both wrap during the tests


def test_the_payload_layout_of_rfc_4733_section_2_3():
    # event 11 (#), E bit, R 0, volume 10 (-10 dBm0), duration 800
    assert telephone_event_payload(11, True, 10, 800) == bytes([11, 0x80 | 10, 0x03, 0x20])
    assert telephone_event_payload(0, False, 63, 0xFFFF) == bytes([0, 63, 0xFF, 0xFF])


@pytest.mark.parametrize(("event", "volume", "duration"), [(256, 0, 0), (1, 64, 0), (1, 0, 0x10000), (1, 0, -1)])
def test_a_field_out_of_range_is_refused(event, volume, duration):
    with pytest.raises(ValueError, match="out of range"):
        telephone_event_payload(event, False, volume, duration)


def relay_packets(pcm: bytes, call_rate: int, wire_rate: int, chunk_seconds: float = 0.02) -> tuple[
        list[RtpPacket], list]:
    """The packets a relay sends for this audio, fed in chunks, and the digits it reports."""
    packetizer = RtpPacketizer(0, SSRC, FIRST_SEQUENCE, FIRST_TIMESTAMP)
    relay = DtmfRelay(EVENT_PT, call_rate, wire_rate, packetizer, FIRST_TIMESTAMP)
    chunk = 2 * round(call_rate * chunk_seconds)
    packets, digits = [], []
    for at in range(0, len(pcm), chunk):
        sent, ended = relay.feed(pcm[at:at + chunk])
        packets += [parse_rtp(packet) for packet in sent]
        digits += ended
    return packets, digits


def fields(packet: RtpPacket) -> tuple[int, bool, int, int]:
    """event, E bit, volume, duration"""
    event, flags, duration = struct.unpack("!BBH", packet.payload)
    return event, bool(flags & 0x80), flags & 0x3F, duration


def by_event(packets: list[RtpPacket]) -> list[list[RtpPacket]]:
    """The packets of each event or segment (one timestamp), in order: a segment's repeated end may be sent
    between the next segment's packets."""
    events: dict[int, list[RtpPacket]] = {}
    for packet in packets:
        events.setdefault(packet.timestamp, []).append(packet)
    return list(events.values())


@pytest.mark.parametrize(("call_rate", "wire_rate"), [(8000, 8000), (16000, 16000), (16000, 8000)])
def test_each_digit_is_one_event_on_the_stream_at_the_wire_clock(call_rate, wire_rate):
    seconds, pause, first = 0.1, 0.1, 0.1
    terms, length = sequence("1#9", seconds, pause, first=first)
    packets, digits = relay_packets(ffmpeg_pcm([*terms, white_noise(NOISE_DBM0)], call_rate, length), call_rate,
                                    wire_rate)
    assert [digit.digit for digit in digits] == ["1", "#", "9"]
    assert {(packet.payload_type, packet.ssrc) for packet in packets} == {(EVENT_PT, SSRC)}
    assert [packet.sequence for packet in packets] == [(FIRST_SEQUENCE + i) % 65536 for i in range(len(packets))]
    events = by_event(packets)
    assert [fields(event[0])[0] for event in events] == [1, 11, 9]  # RFC 4733 §3.2: # is 11
    for i, event in enumerate(events):
        start = (event[0].timestamp - FIRST_TIMESTAMP) % 2**32
        assert abs(start / wire_rate - (first + i * (seconds + pause))) < 0.01
        assert [packet.marker for packet in event] == [True] + [False] * (len(event) - 1)
        durations = [fields(packet)[3] for packet in event]
        assert durations == sorted(durations)  # an update never says more than the end
        *updates, end1, end2, end3 = event
        assert len(updates) >= 2  # the start, and updates while the key is held
        assert not any(fields(packet)[1] for packet in updates)
        assert fields(end1) == fields(end2) == fields(end3)  # §2.5.1.4: the end three times
        assert fields(end1)[1]
        assert abs(fields(end1)[3] / wire_rate - seconds) < 0.01
        assert fields(end1)[2] == 7  # volume: the pair at -7 dBm0 (two tones at -10)


def test_a_long_press_is_cut_into_segments_of_the_16_bit_duration():
    # At 48 kHz the duration field holds 1.365 s; RFC 4733 §2.5.1.3: a longer event goes on in a new segment
    # whose timestamp is the previous one's plus 0xFFFF; each segment's last packet is sent three times.
    rate = 48000
    terms, length = sequence("5", 2.0, 0.1)
    packets, digits = relay_packets(ffmpeg_pcm(terms, rate, length), rate, rate)
    first, second = by_event(packets)
    assert second[0].timestamp == (first[0].timestamp + 0xFFFF) % 2**32
    assert [fields(packet)[1:] for packet in first[-3:]] == [(False, 7, 0xFFFF)] * 3
    assert not second[0].marker
    end = fields(second[-1])
    assert end[1] and fields(second[-2]) == fields(second[-3]) == end
    assert abs((0xFFFF + end[3]) / rate - 2.0) < 0.01
    assert [digit.digit for digit in digits] == ["5"]


def test_a_chunk_that_holds_whole_digits_sends_their_start_and_end():
    rate = 8000
    terms, length = sequence("73", 0.06, 0.06)
    packets, digits = relay_packets(ffmpeg_pcm(terms, rate, length), rate, rate, chunk_seconds=length)
    assert [digit.digit for digit in digits] == ["7", "3"]
    seven, three = by_event(packets)
    assert [(packet.marker, fields(packet)[1]) for packet in seven] == [(True, False)] + [(False, True)] * 3
    assert [(packet.marker, fields(packet)[1]) for packet in three] == [(True, False), (False, True)]
