import struct

import pytest

from gateway.core.rtp import (
    RTCP_SSRC_HEADER,
    JitterBuffer,
    PushResult,
    ReceiveStats,
    RtcpError,
    RtpError,
    RtpPacket,
    RtpPacketizer,
    SourceLatch,
    app_messages,
    build_app,
    build_bye,
    build_sender_report,
    bye_sources,
    ntp_from_unix,
    parse_rtcp,
    parse_rtp,
    random_stream_origin,
    rtcp_with_ssrc,
    rtp_with_ssrc,
    seq_distance,
)
from tests.rtcp import sdes_cname

SSRC = 0x11223344


def packet(seq: int, ts: int, ssrc: int = SSRC, payload: bytes | None = None) -> RtpPacket:
    return RtpPacket(
        0, False, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, payload or (seq & 0xFFFF).to_bytes(2, "big")
    )


# --- serial arithmetic -------------------------------------------------------------------------------


def test_seq_comparison_wraps():
    assert seq_distance(1, 0) == 1
    assert seq_distance(0, 65535) == 1
    assert seq_distance(65535, 0) == -1
    assert seq_distance(5, 5) == 0
    assert seq_distance(2, 65534) == 4
    assert seq_distance(65534, 2) == -4
    assert seq_distance(0x8000, 0) == -0x8000  # half-way is not "newer"


# --- RTP ---------------------------------------------------------------------------------------------


def test_pack_header_bytes_rfc3550_layout():
    packetizer = RtpPacketizer(payload_type=0, ssrc=SSRC, first_sequence=0x1234, first_timestamp=0xAABBCCDD)
    # RFC 3550 §5.1: V=2 P=0 X=0 CC=0 | M PT | sequence | timestamp | SSRC
    assert packetizer.pack(b"\x01\x02", 160) == bytes.fromhex("80 80 1234 aabbccdd 11223344 0102")
    assert packetizer.pack(memoryview(b"\x03"), 160) == bytes.fromhex("80 00 1235 aabbcd7d 11223344 03")
    assert (packetizer.packet_count, packetizer.octet_count, packetizer.last_timestamp) == (2, 3, 0xAABBCD7D)


def test_pack_parse_round_trip_and_marker_on_first_packet_only():
    packetizer = RtpPacketizer(payload_type=8, ssrc=7, first_sequence=100, first_timestamp=1000)
    parsed = [parse_rtp(packetizer.pack(bytes([i]) * 160, 160)) for i in range(3)]
    assert [p.marker for p in parsed] == [True, False, False]
    assert [p.sequence for p in parsed] == [100, 101, 102]
    assert [p.timestamp for p in parsed] == [1000, 1160, 1320]
    assert all(p.payload_type == 8 and p.ssrc == 7 for p in parsed)
    assert [p.payload for p in parsed] == [bytes([i]) * 160 for i in range(3)]


def test_pack_sequence_and_timestamp_wrap():
    packetizer = RtpPacketizer(payload_type=0, ssrc=1, first_sequence=65535, first_timestamp=2**32 - 100)
    first = parse_rtp(packetizer.pack(b"x", 160))
    second = parse_rtp(packetizer.pack(b"x", 160))
    assert (first.sequence, first.timestamp) == (65535, 2**32 - 100)
    assert (second.sequence, second.timestamp) == (0, 60)


def test_an_event_packet_takes_the_next_sequence_number_and_leaves_the_audio_timing_alone():
    # RFC 4733 §2.1: events share the audio's SSRC and sequence space; their timestamp is the event's start.
    packetizer = RtpPacketizer(payload_type=0, ssrc=9, first_sequence=65535, first_timestamp=1000)
    event = parse_rtp(packetizer.pack_event(101, True, 2**32 + 5, b"\x05\x0a\x00\xa0"))
    audio = parse_rtp(packetizer.pack(b"x" * 160, 160))
    assert (event.payload_type, event.marker, event.sequence, event.timestamp, event.ssrc, event.payload) == (
        101, True, 65535, 5, 9, b"\x05\x0a\x00\xa0")
    assert (audio.payload_type, audio.marker, audio.sequence, audio.timestamp) == (0, True, 0, 1000)
    assert (packetizer.packet_count, packetizer.octet_count, packetizer.last_timestamp) == (2, 164, 1000)


def test_packetizer_rejects_bad_payload_type():
    with pytest.raises(ValueError):
        RtpPacketizer(payload_type=128, ssrc=1, first_sequence=0, first_timestamp=0)


def test_random_stream_origin_ranges():
    ssrc, sequence, timestamp = random_stream_origin()
    assert 0 <= ssrc < 2**32 and 0 <= sequence < 2**16 and 0 <= timestamp < 2**32


def test_parse_captured_pcmu_packet():
    # Layout of a PCMU packet as seen in a capture: 80 00 | seq | ts | ssrc | 160 octets of mu-law.
    data = bytes.fromhex("80 00 5e 3d 00 01 f4 00 6b 8b 45 67") + b"\xff" * 160
    parsed = parse_rtp(data)
    assert parsed == RtpPacket(0, False, 0x5E3D, 128000, 0x6B8B4567, b"\xff" * 160)
    assert type(parsed.payload) is bytes


def test_parse_skips_csrcs_and_extension_and_removes_padding():
    data = (
        bytes.fromhex("b2 e1 0001 00000002 00000003")  # V=2 P=1 X=1 CC=2, M=1 PT=97
        + bytes.fromhex("0000000a 0000000b")  # two CSRCs
        + bytes.fromhex("bede 0001 10ff0000")  # RFC 3550 §5.3.1 extension: one 32-bit word
        + b"abc"
        + b"\x00\x00\x03"  # padding: count in the last octet
    )
    assert parse_rtp(data) == RtpPacket(97, True, 1, 2, 3, b"abc")


def test_parse_padding_may_consume_whole_payload():
    assert parse_rtp(bytes.fromhex("a0 00 0001 00000002 00000003 00000004")).payload == b""


HEADER = bytes.fromhex("80 00 0001 00000002 00000003")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "too_short"),
        (HEADER[:11], "too_short"),
        (b"\x40" + HEADER[1:], "bad_version"),
        (b"\x00" + HEADER[1:], "bad_version"),
        (b"\x82" + HEADER[1:] + b"\x00" * 4, "bad_csrc"),  # two CSRCs announced, one present
        (b"\x90" + HEADER[1:] + b"\xbe\xde", "bad_extension"),  # extension header cut short
        (b"\x90" + HEADER[1:] + bytes.fromhex("bede 0002 00000000"), "bad_extension"),  # 2 words, 1 given
        (b"\xa0" + HEADER[1:], "bad_padding"),  # no room for the padding count
        (b"\xa0" + HEADER[1:] + b"abc\x00", "bad_padding"),  # zero padding count
        (b"\xa0" + HEADER[1:] + b"abc\x05", "bad_padding"),  # more padding than payload
    ],
)
def test_parse_rtp_errors(data, reason):
    with pytest.raises(RtpError) as error:
        parse_rtp(data)
    assert error.value.reason == reason
    assert isinstance(error.value, ValueError)


# --- RTCP --------------------------------------------------------------------------------------------


def test_sender_report_layout():
    ntp = ntp_from_unix(1_700_000_000.25)
    assert ntp == 3_908_988_800.25
    data = build_sender_report(0x01020304, ntp, 0xDEADBEEF, 2**32 + 5, 1234, "ab")
    # RFC 3550 §6.4.1: V=2 RC=0 PT=200, length 6 (28 octets), SSRC, NTP 32.32, RTP ts, counts.
    assert data[:28] == bytes.fromhex("80 c8 0006 01020304 e8fe6f80 40000000 deadbeef 00000005 000004d2")
    # RFC 3550 §6.5: SC=1 PT=202, length 3; chunk SSRC, CNAME item (type 1, len 2), nulls to 32 bits.
    assert data[28:] == bytes.fromhex("81 ca 0003 01020304 01 02 6162 00000000")


def test_ntp_fraction_encoding():
    data = build_sender_report(1, 3_908_988_800.5, 0, 0, 0, "x")
    assert struct.unpack_from("!II", data, 8) == (3_908_988_800, 0x80000000)


@pytest.mark.parametrize("cname", ["", "a", "ab", "abc", "abcd", "user@192.0.2.1", "é" * 3])
def test_sdes_padding_and_cname_round_trip(cname):
    data = build_sender_report(9, ntp_from_unix(0.0), 0, 0, 0, cname)
    packets = parse_rtcp(data)
    assert [p.packet_type for p in packets] == [200, 202]
    sdes = data[28:]
    assert len(sdes) % 4 == 0
    assert struct.unpack_from("!H", sdes, 2)[0] == len(sdes) // 4 - 1
    item_end = 4 + 4 + 2 + len(cname.encode())
    assert len(sdes) - item_end >= 1 and not any(sdes[item_end:])  # at least one null octet
    assert sdes_cname(packets) == cname


def test_long_cname_truncated_at_character_boundary():
    packets = parse_rtcp(build_sender_report(9, 0.0, 0, 0, 0, "é" * 200))  # 400 octets
    assert sdes_cname(packets) == "é" * 127  # 254 octets: the 255th would split a character


def test_bye_compound():
    data = build_bye(0x0A0B0C0D, "cn", "bye now")
    packets = parse_rtcp(data)
    assert [(p.packet_type, p.count) for p in packets] == [(201, 0), (202, 1), (203, 1)]
    assert data[:8] == bytes.fromhex("80 c9 0001 0a0b0c0d")  # RR without report blocks
    assert packets[2].body == bytes.fromhex("0a0b0c0d 07") + b"bye now"  # reason fits 32 bits exactly
    assert bye_sources(packets) == {0x0A0B0C0D}
    assert sdes_cname(packets) == "cn"
    assert bye_sources(parse_rtcp(build_sender_report(1, 0.0, 0, 0, 0, "cn"))) is None


def test_bye_reason_padding_and_no_reason():
    assert parse_rtcp(build_bye(1, "cn", "ab"))[2].body == bytes.fromhex("00000001 02 6162 00")
    bye = build_bye(1, "cn")[-8:]
    assert bye == bytes.fromhex("81 cb 0001 00000001")


def test_parse_rtcp_keeps_unknown_types_and_strips_padding():
    app = bytes.fromhex("85 cc 0002 00000001") + b"NAME"  # APP, subtype 5
    padded_rr = bytes.fromhex("a0 c9 0002 00000002 00000004")  # P=1: 4 octets of padding
    other = bytes.fromhex("80 d0 0000")  # PT 208, kept as-is
    packets = parse_rtcp(app + padded_rr + other)
    assert [(p.packet_type, p.count, p.body) for p in packets] == [
        (204, 5, bytes.fromhex("00000001") + b"NAME"),
        (201, 0, bytes.fromhex("00000002")),
        (208, 0, b""),
    ]


RR = bytes.fromhex("80 c9 0001 00000001")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "too_short"),
        (RR[:3], "too_short"),
        (RR + b"\x80\xc9", "too_short"),  # trailing bytes after a valid packet
        (b"\x40" + RR[1:], "bad_version"),
        (RR + b"\x00" + RR[1:], "bad_version"),  # second packet of the compound
        (bytes.fromhex("80 c9 0002 00000001"), "bad_length"),
        (bytes.fromhex("a0 c9 0001 00000000"), "bad_padding"),
        (bytes.fromhex("a0 c9 0001 00000009"), "bad_padding"),
    ],
)
def test_parse_rtcp_errors(data, reason):
    with pytest.raises(RtcpError) as error:
        parse_rtcp(data)
    assert error.value.reason == reason


# --- ReceiveStats ------------------------------------------------------------------------------------


def feed(stats: ReceiveStats, seqs: list[int], start_ts: int = 0) -> None:
    for seq in seqs:
        stats.update(packet(seq, start_ts + 160 * seq), arrival=seq * 0.02)


def test_stats_in_order():
    stats = ReceiveStats(8000)
    assert (stats.expected, stats.received, stats.lost) == (0, 0, 0)
    feed(stats, list(range(100)))
    assert (stats.expected, stats.received, stats.lost, stats.reordered, stats.duplicates) == (
        100,
        100,
        0,
        0,
        0,
    )
    assert stats.jitter_seconds == pytest.approx(0.0, abs=1e-9)


def test_stats_loss():
    stats = ReceiveStats(8000)
    feed(stats, [1, 2, 6, 7])
    assert (stats.expected, stats.received, stats.lost) == (7, 4, 3)


def test_stats_reordering_fills_the_gap():
    stats = ReceiveStats(8000)
    feed(stats, [1, 2, 4, 3, 5])
    assert (stats.expected, stats.received, stats.lost, stats.reordered) == (5, 5, 0, 1)


def test_stats_duplicates():
    stats = ReceiveStats(8000)
    feed(stats, [1, 2, 2, 3, 2, 4])
    assert stats.duplicates == 2
    assert stats.reordered == 0
    assert (stats.expected, stats.received) == (4, 6)  # RFC 3550 §6.4.1: received counts duplicates
    assert stats.lost == 0  # would be -2: clamped


def test_stats_wraparound():
    stats = ReceiveStats(8000)
    seqs = [65533, 65534, 65535, 0, 2, 1, 3]
    for i, seq in enumerate(seqs):
        stats.update(packet(seq, 160 * i), arrival=0.02 * i)
    assert (stats.expected, stats.received, stats.lost, stats.reordered) == (7, 7, 0, 1)


def test_stats_wraparound_with_loss():
    stats = ReceiveStats(8000)
    for seq in [65534, 65535, 3]:
        stats.update(packet(seq, 0), arrival=0.0)
    assert (stats.expected, stats.lost) == (6, 3)


def test_stats_large_jump_needs_two_sequential_packets():
    stats = ReceiveStats(8000)
    feed(stats, [1, 2])
    stats.update(packet(20000, 0), arrival=1.0)  # stray: discarded
    assert (stats.expected, stats.received) == (2, 2)
    stats.update(packet(20001, 160), arrival=1.02)  # sequential: the sender restarted, re-sync
    assert (stats.expected, stats.received, stats.lost) == (1, 1, 0)


def test_stats_reset_on_ssrc_change():
    stats = ReceiveStats(8000)
    feed(stats, [1, 2, 5, 3])
    stats.update(packet(40000, 0, ssrc=99), arrival=1.0)
    assert (stats.expected, stats.received, stats.lost, stats.jitter_seconds) == (1, 1, 0, 0)


def test_stats_reordered_and_duplicates_count_over_the_call_across_ssrc_changes():
    """They feed Prometheus counters as deltas: going back to 0 with a new SSRC made the flush add a negative
    amount, which raised inside the worker's housekeeping timer (issue 9.1)."""
    stats = ReceiveStats(8000)
    feed(stats, [1, 2, 4, 3, 3])
    stats.update(packet(40000, 0, ssrc=99), arrival=1.0)
    assert (stats.reordered, stats.duplicates) == (1, 1)


def test_stats_jitter_perfect_pacing_across_timestamp_wrap():
    stats = ReceiveStats(8000)
    for i in range(50):
        stats.update(packet(i, 2**32 - 800 + 160 * i), arrival=100.0 + 0.02 * i)
    assert stats.jitter_seconds == pytest.approx(0.0, abs=1e-9)


def test_stats_jitter_alternating_delay_converges():
    # Delay alternates +d/-d: every transit difference is 2d, so J converges to 2d (RFC 3550 A.8).
    d = 0.005
    stats = ReceiveStats(8000)
    for i in range(300):
        stats.update(packet(i, 160 * i), arrival=0.02 * i + (d if i % 2 else -d))
    assert stats.jitter_seconds == pytest.approx(2 * d, rel=1e-3)


# --- JitterBuffer ------------------------------------------------------------------------------------


def test_jitter_buffer_releases_in_order_immediately():
    buffer = JitterBuffer(8000)
    for i in range(5):
        assert buffer.push(packet(10 + i, 160 * i), 160, now=0.02 * i) is PushResult.ACCEPTED
        assert buffer.pop(0.02 * i) == [(160 * i, (10 + i).to_bytes(2, "big"), 160)]
    assert len(buffer) == 0
    assert buffer.pop(1.0) == []


def test_jitter_buffer_reorders_within_max_wait():
    buffer = JitterBuffer(8000)
    buffer.push(packet(1, 0), 160, now=0.0)
    assert buffer.pop(0.0) == [(0, b"\x00\x01", 160)]
    buffer.push(packet(3, 320), 160, now=0.02)
    assert buffer.pop(0.05) == []
    assert len(buffer) == 1
    buffer.push(packet(2, 160), 160, now=0.07)
    assert buffer.pop(0.07) == [(160, b"\x00\x02", 160), (320, b"\x00\x03", 160)]
    assert buffer.lost_packets == 0


def test_jitter_buffer_declares_loss_after_max_wait_then_late():
    buffer = JitterBuffer(8000, max_wait=0.06)
    buffer.push(packet(1, 0), 160, now=0.0)
    buffer.pop(0.0)
    buffer.push(packet(5, 640), 160, now=1.0)  # 2, 3, 4 missing
    buffer.push(packet(6, 800), 160, now=1.02)
    assert buffer.pop(1.059) == []
    assert buffer.pop(1.061) == [(160, None, 480), (640, b"\x00\x05", 160), (800, b"\x00\x06", 160)]
    assert buffer.lost_packets == 3
    assert buffer.push(packet(3, 320), 160, now=1.07) is PushResult.LATE
    assert buffer.push(packet(6, 800), 160, now=1.07) is PushResult.LATE  # already played out
    assert buffer.late == 2
    assert buffer.pop(1.07) == []


def test_jitter_buffer_loss_duration_from_timestamps():
    buffer = JitterBuffer(8000)
    buffer.push(packet(1, 1000), 160, now=0.0)
    buffer.pop(0.0)
    buffer.push(packet(3, 1000 + 160 + 240), 160, now=0.0)  # the lost packet carried 240 samples
    assert buffer.pop(0.1) == [(1160, None, 240), (1400, b"\x00\x03", 160)]
    buffer.push(packet(5, 1400), 160, now=0.2)  # timestamp goes backwards: duration clamped to 0
    assert buffer.pop(0.3) == [(1560, None, 0), (1400, b"\x00\x05", 160)]


def test_jitter_buffer_duplicate():
    buffer = JitterBuffer(8000)
    buffer.push(packet(1, 0), 160, now=0.0)
    buffer.pop(0.0)
    assert buffer.push(packet(3, 320), 160, now=0.01) is PushResult.ACCEPTED
    assert buffer.push(packet(3, 320), 160, now=0.02) is PushResult.DUPLICATE
    assert (buffer.duplicates, len(buffer)) == (1, 1)


def test_jitter_buffer_capacity_forces_loss():
    buffer = JitterBuffer(8000, capacity=3)
    buffer.push(packet(1, 0), 160, now=0.0)
    buffer.pop(0.0)
    for seq in (3, 4, 5):
        buffer.push(packet(seq, 160 * (seq - 1)), 160, now=0.0)
    assert buffer.pop(0.0) == []
    buffer.push(packet(6, 800), 160, now=0.0)
    expected = [(160 * (seq - 1), seq.to_bytes(2, "big"), 160) for seq in (3, 4, 5, 6)]
    assert buffer.pop(0.0) == [(160, None, 160), *expected]
    assert buffer.lost_packets == 1


def test_jitter_buffer_wraparound_across_gap():
    buffer = JitterBuffer(8000)
    buffer.push(packet(65534, 2**32 - 160), 160, now=0.0)
    assert buffer.pop(0.0) == [(2**32 - 160, b"\xff\xfe", 160)]
    buffer.push(packet(0, 160), 160, now=0.04)  # 65535 (timestamp 0) missing
    buffer.push(packet(1, 320), 160, now=0.06)
    assert buffer.pop(0.11) == [(0, None, 160), (160, b"\x00\x00", 160), (320, b"\x00\x01", 160)]
    assert buffer.lost_packets == 1
    assert buffer.push(packet(65535, 0), 160, now=0.12) is PushResult.LATE


def test_jitter_buffer_ssrc_change_resets():
    buffer = JitterBuffer(8000)
    buffer.push(packet(1, 0), 160, now=0.0)
    buffer.pop(0.0)
    buffer.push(packet(3, 320), 160, now=0.01)  # waiting for 2: dropped by the reset
    assert buffer.push(packet(500, 7, ssrc=42), 160, now=0.02) is PushResult.RESET
    assert buffer.pop(0.02) == [(7, b"\x01\xf4", 160)]
    assert (buffer.resets, buffer.lost_packets, len(buffer)) == (1, 0, 0)
    assert buffer.push(packet(501, 167, ssrc=42), 160, now=0.04) is PushResult.ACCEPTED


@pytest.mark.parametrize(
    ("seq", "ts"),
    [
        (2 + 3001, 320),  # sequence jump beyond MAX_DROPOUT
        (2 - 3002, 320),  # ... backwards too: a restarted sender must not be LATE for minutes
        (2, 160 + 8001),  # timestamp jump beyond max_gap_seconds (e.g. after silence suppression)
        (2, 160 - 8001),
    ],
)
def test_jitter_buffer_jump_resets(seq, ts):
    buffer = JitterBuffer(8000, max_gap_seconds=1.0)
    buffer.push(packet(1, 0), 160, now=0.0)
    buffer.pop(0.0)
    assert buffer.push(packet(seq, ts), 160, now=0.02) is PushResult.RESET
    assert buffer.pop(0.02) == [(ts & 0xFFFFFFFF, (seq & 0xFFFF).to_bytes(2, "big"), 160)]
    assert buffer.lost_packets == 0


def test_jitter_buffer_jump_within_limits_is_concealed():
    buffer = JitterBuffer(8000, max_gap_seconds=1.0)
    buffer.push(packet(1, 0), 160, now=0.0)
    buffer.pop(0.0)
    assert buffer.push(packet(51, 8000), 160, now=0.5) is PushResult.ACCEPTED  # exactly 1 s later
    assert buffer.pop(0.6) == [(160, None, 7840), (8000, b"\x00\x33", 160)]
    assert buffer.lost_packets == 49


def test_app_packet_round_trip():
    packet = build_app(0x01020304, b"CLER", b"\x00\x00\x00\x01")
    assert packet[:4] == bytes((0x80, 204, 0, 3))
    parsed = parse_rtcp(packet)
    assert app_messages(parsed) == [(b"CLER", 0, b"\x00\x00\x00\x01")]
    assert app_messages(parse_rtcp(build_app(5, b"MARK", bytes(8), subtype=2))) == [(b"MARK", 2, bytes(8))]
    with pytest.raises(ValueError):
        build_app(1, b"TOOLONG")


def test_in_order_packets_skip_the_buffer_and_others_do_not():
    jb = JitterBuffer(8000)
    assert not jb.take_in_order(packet(10, 1600), 160)  # the first packet sets the base through push()
    assert jb.push(packet(10, 1600), 160, 0.0) is PushResult.ACCEPTED
    assert jb.pop(0.0) == [(1600, packet(10, 1600).payload, 160)]
    assert jb.take_in_order(packet(11, 1760), 160)
    assert not jb.take_in_order(packet(13, 2080), 160)  # a gap: must be buffered
    assert jb.push(packet(13, 2080), 160, 0.0) is PushResult.ACCEPTED
    assert not jb.take_in_order(packet(12, 1920), 160)  # something is held: order goes through the buffer
    assert jb.push(packet(12, 1920), 160, 0.0) is PushResult.ACCEPTED
    assert [samples for _, _, samples in jb.pop(0.0)] == [160, 160]
    assert not jb.take_in_order(packet(14, 2240, ssrc=SSRC + 1), 160)  # another stream: a reset via push()


def test_bye_sources_lists_every_ssrc_of_every_bye():
    two = RTCP_SSRC_HEADER.pack(0x82, 203, 2, 7) + (8).to_bytes(4, "big")  # one BYE, SC = 2
    assert bye_sources(parse_rtcp(build_bye(5, "cn") + two)) == {5, 7, 8}


def test_the_source_latch_takes_the_first_ssrc_and_a_new_one_only_as_a_restart():
    latch = SourceLatch()
    assert latch.accept(0xA, 10) and latch.ssrc == 0xA
    assert not latch.accept(0xB, 500)  # a stray packet of another stream: refused
    assert latch.accept(0xA, 11)  # the latched stream goes on, and the probation starts over
    assert not latch.accept(0xB, 501)
    assert not latch.accept(0xB, 503)  # not in sequence: starts over
    assert latch.accept(0xB, 504)  # two in sequence, none of the old between: the service restarted
    assert latch.ssrc == 0xB
    assert not latch.accept(0xA, 12)  # the old stream is now the stray one
    assert latch.accept(0xB, 505)


def test_jitter_buffer_drop_through_clears_what_is_held_and_moves_the_playout_point_past_it():
    buffer = JitterBuffer(8000)
    buffer.push(packet(1, 0), 160, now=0.0)
    buffer.pop(0.0)
    for seq in (4, 3, 6):  # 2 missing: 3 and 4 wait behind it, 6 is later
        buffer.push(packet(seq, 160 * (seq - 1)), 160, now=0.0)
    buffer.drop_through(160 * 3)  # packets up to timestamp 480 (seq 4) are cleared, the gap before them too
    assert buffer.pop(0.0) == [(800, b"\x00\x06", 160)]
    assert buffer.lost_packets == 0
    buffer.push(packet(7, 960), 160, now=0.02)
    assert buffer.pop(0.02) == [(960, b"\x00\x07", 160)]


def test_jitter_buffer_drop_through_everything_held_continues_after_the_last_cleared():
    buffer = JitterBuffer(8000)
    buffer.push(packet(1, 0), 160, now=0.0)
    buffer.pop(0.0)
    buffer.push(packet(3, 320), 160, now=0.0)
    buffer.drop_through(320)
    assert len(buffer) == 0
    assert buffer.take_in_order(packet(4, 480), 160)  # the next one plays in order


def test_a_forks_copy_differs_only_in_its_ssrc():
    packet = RtpPacketizer(0, 0x11111111, 5, 800).pack(bytes(range(160)), 160)
    copy = parse_rtp(rtp_with_ssrc(packet, 0x22222222))
    original = parse_rtp(packet)
    assert (copy.ssrc, copy.sequence, copy.timestamp, copy.payload) == (
        0x22222222, original.sequence, original.timestamp, original.payload)
    for compound in (build_sender_report(0x11111111, ntp_from_unix(0.0), 800, 1, 160, "call-1"),
                     build_bye(0x11111111, "call-1", "hangup")):
        rewritten = parse_rtcp(rtcp_with_ssrc(compound, 0x22222222))
        assert [packet.packet_type for packet in rewritten] == [packet.packet_type for packet in parse_rtcp(compound)]
        assert {int.from_bytes(packet.body[:4], "big") for packet in rewritten} == {0x22222222}
        assert bye_sources(rewritten) in (None, {0x22222222})
