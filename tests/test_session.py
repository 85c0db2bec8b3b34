"""The call state machine with a fake clock and a recording output: no sockets, no sleeps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gateway.core import commands
from gateway.core.call import CallOutput
from gateway.core.rtp import (
    RtpPacketizer,
    app_messages,
    build_app,
    build_bye,
    bye_sources,
    parse_rtcp,
    parse_rtp,
)
from gateway.core.session import CallSession, CallState, CloseCode
from gateway.shared.config import Config, Route
from tests.dtmf_tones import FFMPEG, NOISE_DBM0, ffmpeg_pcm, sequence, white_noise
from tests.rtcp import sdes_cname
from tests.sinch_client import frames

ROUTE = Route(name="asr", host="127.0.0.1", port=5004)
MEDIA_SSRC = 0xABCD  # the stream the media service sends back
CONNECT = b'{"command":"connect","callId":"call-7","sampleRate":16000,"callHeaders":{"a":"b"}}'
FRAME = (np.arange(320, dtype="<i2") * 50).tobytes()  # 20 ms at 16 kHz, as Sinch sends it
WIRE_FRAME = np.frombuffer(FRAME, "<i2").astype(">i2").tobytes()  # the same on the wire (RFC 3551 §4.5.11)


class Recorder(CallOutput):
    def __init__(self) -> None:
        self.commands: list[dict] = []
        self.audio: list[bytes] = []
        self.rtp: list[bytes] = []
        self.rtcp: list[bytes] = []
        self.closed: tuple[int, str] | None = None
        self.answered_with = None
        self.at_capacity = False
        self.marks: list[tuple[int, int, str]] = []
        self.digits: list[tuple[str, float]] = []

    def send_command(self, message: bytes) -> None:
        self.commands.append(json.loads(message))

    def send_audio(self, pcm: bytes) -> None:
        self.audio.append(pcm)

    def send_rtp(self, packet: bytes) -> None:
        self.rtp.append(packet)

    def send_rtcp(self, packet: bytes) -> None:
        self.rtcp.append(packet)

    def admit(self) -> bool:
        return not self.at_capacity

    def mark_settled(self, mark_id: int, timestamp: int, outcome: str) -> None:
        self.marks.append((mark_id, timestamp, outcome))

    def dtmf(self, digit: str, seconds: float) -> None:
        self.digits.append((digit, seconds))

    def answered(self, connect, sample_rate) -> None:
        self.answered_with = (connect.call_id, sample_rate)

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


def new_session(route: Route = ROUTE, **config) -> tuple[CallSession, Recorder]:
    output = Recorder()
    return CallSession(Config(**config), route, output, now=100.0), output


def answered_session(**config) -> tuple[CallSession, Recorder]:
    session, output = new_session(**config)
    session.on_text(CONNECT, 100.0)
    return session, output


def media_packets(count: int, first_seq: int = 1000, samples: int = 320) -> list[bytes]:
    packetizer = RtpPacketizer(96, MEDIA_SSRC, first_seq, 5000)
    return [packetizer.pack(WIRE_FRAME, samples) for _ in range(count)]


def test_connect_is_answered_with_the_call_rate():
    session, output = answered_session()
    assert output.commands == [{"command": "answer"}]
    assert output.answered_with == ("call-7", 16000)
    assert session.state is CallState.ANSWERED
    assert (session.format.payload_type, session.format.ptime_ms) == (96, 20)


def test_busy_when_the_worker_is_at_capacity():
    session, output = new_session()
    output.at_capacity = True
    session.on_text(CONNECT, 100.0)
    assert output.commands == [{"command": "busy"}]
    assert output.closed == (CloseCode.NORMAL, "busy: gateway at capacity")
    assert (session.outcome, session.call_id, session.state) == ("busy", "call-7", CallState.CLOSED)


def test_url_rate_then_default_rate_when_connect_has_none():
    output = Recorder()
    session = CallSession(Config(), ROUTE, output, now=0.0, url_rate=48000)
    session.on_text(b'{"command":"connect","callId":"c"}', 0.0)
    assert session.format.call_rate == 48000
    session, output = new_session()
    session.on_text(b'{"command":"connect","callId":"c"}', 0.0)
    assert session.format.call_rate == 8000


def test_audio_becomes_big_endian_rtp_with_marker_and_cname_report():
    session, output = answered_session()
    session.on_audio(FRAME, 100.01)
    session.on_audio(FRAME, 100.03)
    first, second = (parse_rtp(p) for p in output.rtp)
    assert first.payload == WIRE_FRAME
    assert (first.marker, second.marker) == (True, False)
    assert (second.sequence - first.sequence) % 65536 == 1
    assert (second.timestamp - first.timestamp) % 2**32 == 320
    assert sdes_cname(parse_rtcp(output.rtcp[0])) == "call-7"


def test_small_chunks_are_packetized_at_ptime():
    session, output = answered_session()
    for start in range(0, len(FRAME) * 3, 100):
        session.on_audio((FRAME * 3)[start:start + 100], 100.1)
    assert [len(parse_rtp(p).payload) for p in output.rtp] == [640, 640, 640]


def test_audio_before_connect_is_a_policy_violation():
    session, output = new_session()
    session.on_audio(FRAME, 100.0)
    assert output.closed == (CloseCode.POLICY_VIOLATION, "audio before connect")
    assert output.commands == []


def test_no_connect_in_time_closes():
    session, output = new_session(connect_timeout=2.0)
    session.on_tick(101.9)
    assert output.closed is None
    session.on_tick(102.0)
    assert output.closed == (CloseCode.POLICY_VIOLATION, "no connect command within 2s")


@pytest.mark.parametrize(
    ("text", "code"), [(b"nope", CloseCode.INVALID_PAYLOAD), (b'{"command":"connect"}', CloseCode.POLICY_VIOLATION),
                       (b'{"a":' * 1000 + b"1" + b"}" * 1000, CloseCode.INVALID_PAYLOAD)]
)
def test_bad_connect_is_rejected_then_closed(text, code):
    session, output = new_session()
    session.on_text(text, 100.0)
    assert output.commands == [{"command": "reject"}]
    assert output.closed[0] == code
    assert session.state is CallState.CLOSED


def test_return_audio_is_paced_at_real_time_with_a_small_lead():
    session, output = answered_session(pacing_lead_frames=3)
    for packet in media_packets(10):
        session.on_rtp(packet, 100.5)
    assert len(output.audio) == 3  # the lead goes out at once
    assert session.pacing_pending()  # the rest waits on the clock: the worker's fast tick must come
    for step in range(1, 8):  # then one frame per 20 ms, the worker ticking every 10 ms
        session.on_pacing_tick(100.5 + step * 0.01)
        assert len(output.audio) == 3 + step // 2
    for step in range(8, 15):
        session.on_pacing_tick(100.5 + step * 0.01)
    assert len(output.audio) == 10
    assert not session.pacing_pending()
    assert all(frame == FRAME for frame in output.audio)  # L16 round trip is exact


def test_return_queue_cap_drops_oldest_and_counts():
    session, _output = answered_session(return_queue_seconds=0.1, pacing_lead_frames=1)
    for packet in media_packets(20):
        session.on_rtp(packet, 100.5)
    assert session.return_queue_bytes <= 5 * 640
    assert session.counters.return_queue_dropped_bytes == 14 * 640


def test_loss_is_concealed_after_the_wait_keeping_duration():
    session, output = answered_session(jitter_max_wait=0.06, pacing_lead_frames=50)
    packets = media_packets(4)
    for packet in (packets[0], packets[1], packets[3]):
        session.on_rtp(packet, 100.5)
    assert len(output.audio) == 2
    session.on_tick(100.58)
    assert len(output.audio) == 4
    assert output.audio[3] == FRAME


def test_bye_plays_what_the_jitter_buffer_holds_behind_a_gap_then_closes_once():
    session, output = answered_session(pacing_lead_frames=20)
    packets = media_packets(6)
    for packet in packets[:1] + packets[2:]:  # the second is lost: four wait behind the gap
        session.on_rtp(packet, 100.5)
    assert len(output.audio) == 1
    session.on_rtcp(build_bye(MEDIA_SSRC, "media"), 100.51)
    assert len(output.audio) == 6  # the gap concealed, the held packets played
    assert output.audio[-1] == FRAME
    assert output.closed == (CloseCode.NORMAL, "media service sent RTCP BYE")
    assert not session.pacing_pending()
    output.closed = None
    session.on_pacing_tick(100.6)
    assert output.closed is None  # closed once, not again on every tick


def test_a_loss_adds_no_lasting_delay():
    """Packets held while a lost one is awaited go out at once when it is concealed: the stream is back on
    its real-time schedule, not max_wait behind it for the rest of the call."""
    session, output = answered_session(jitter_max_wait=0.06, pacing_lead_frames=3)
    packets = media_packets(12)
    start = 100.5
    for index, packet in enumerate(packets):
        now = start + index * 0.02
        session.on_tick(now)
        if index != 2:  # lost
            session.on_rtp(packet, now)
    session.on_tick(start + 12 * 0.02)
    assert len(output.audio) == 12  # every frame (one concealed) sent by the time the last one arrived
    assert output.audio[-1] == FRAME


def test_a_stalled_sinch_connection_holds_audio_in_the_capped_queue():
    session, output = answered_session(return_queue_seconds=0.1, pacing_lead_frames=3)
    session.set_output_paused(True, 100.5)  # TCP backpressure from Sinch's side
    for index, packet in enumerate(media_packets(10)):
        session.on_rtp(packet, 100.5 + index * 0.02)
        session.on_pacing_tick(100.5 + index * 0.02)
    assert output.audio == []
    assert session.return_queue_bytes == 5 * 640  # the cap
    assert session.counters.return_queue_dropped_bytes == 5 * 640
    session.set_output_paused(False, 100.7)
    assert len(output.audio) == 3  # sending resumes, paced


def test_heartbeat_only_when_nothing_was_sent():
    session, output = answered_session(heartbeat_interval=1.0)
    session.on_tick(100.9)
    assert output.commands == [{"command": "answer"}]
    session.on_tick(101.0)
    assert output.commands[-1] == {"command": "heartbeat"}
    session.on_rtp(media_packets(1)[0], 101.5)
    session.on_tick(101.99)
    assert output.commands.count({"command": "heartbeat"}) == 1


def test_maximum_duration():
    session, output = answered_session(max_call_duration=30)
    session.on_tick(129.9)
    assert output.closed is None
    session.on_tick(130.0)
    assert output.closed == (CloseCode.NORMAL, "maximum call duration reached")


def test_garbage_is_counted_not_fatal():
    session, output = answered_session()
    session.on_rtp(b"\x80\x60", 100.1)
    session.on_rtp(RtpPacketizer(0, 1, 1, 1).pack(b"\xff" * 160, 160), 100.1)
    session.on_rtcp(b"\x00", 100.1)
    assert session.counters.rtp_dropped == {
        "too_short": 1, "unexpected_payload_type": 1, "rtcp_too_short": 1,
    }
    assert session.state is CallState.ANSWERED
    assert output.closed is None


def test_rtcp_bye_from_the_media_service_hangs_up():
    session, output = answered_session()
    session.on_audio(FRAME, 100.02)
    session.on_rtcp(build_bye(MEDIA_SSRC, "media"), 100.1)
    assert output.closed == (CloseCode.NORMAL, "media service sent RTCP BYE")
    assert bye_sources(parse_rtcp(output.rtcp[-1]))


def test_audio_queued_before_bye_is_still_played_out():
    session, output = answered_session(pacing_lead_frames=1)
    packets = media_packets(7)
    packets[5] = packets[5][:-320]  # the last one half as long: 10 ms
    for packet in packets[:6]:  # a burst, faster than real time
        session.on_rtp(packet, 100.5)
    session.on_rtcp(build_bye(MEDIA_SSRC, "media"), 100.5)
    session.on_rtp(packets[6], 100.5)  # after the BYE: not played
    assert output.closed is None
    for step in range(1, 20):
        session.on_tick(100.5 + step * 0.01)
    assert output.audio == [FRAME] * 5 + [FRAME[:320] + bytes(320)]  # the tail padded with silence
    assert output.closed == (CloseCode.NORMAL, "media service sent RTCP BYE")
    assert session.counters.rtp_dropped["after_hangup"] == 1


def test_hangup_by_sinch_sends_bye_and_does_not_close_again():
    session, output = answered_session()
    session.on_audio(FRAME, 100.02)
    session.on_closed(1000, "caller hung up", 101.0)
    assert output.closed is None
    assert session.closed_by_peer
    assert sdes_cname(parse_rtcp(output.rtcp[-1])) == "call-7"
    assert bye_sources(parse_rtcp(output.rtcp[-1]))


def test_rtcp_app_clear_flushes_queue_and_tells_sinch():
    session, output = answered_session(pacing_lead_frames=1)
    for packet in media_packets(5):
        session.on_rtp(packet, 100.5)
    assert session.return_queue_bytes == 4 * 640
    session.on_rtcp(build_app(77, b"CLER"), 100.5)
    assert session.return_queue_bytes == 0
    assert output.commands[-1] == {"command": "clear"}
    session.on_rtcp(build_app(77, b"XYZW"), 100.5)
    assert output.commands.count({"command": "clear"}) == 1


def test_rtcp_app_clear_with_a_timestamp_keeps_the_audio_after_it():
    session, output = answered_session(pacing_lead_frames=1)
    for packet in media_packets(5):  # timestamps 5000, 5320, ... : one played, four queued
        session.on_rtp(packet, 100.5)
    session.on_rtcp(build_app(77, b"CLER", (5000 + 2 * 320).to_bytes(4, "big")), 100.5)
    assert session.return_queue_bytes == 2 * 640  # frames 3 and 4 stay
    assert output.commands[-1] == {"command": "clear"}


def test_rtcp_app_mark_is_answered_played_by_rtcp_and_to_the_call_output():
    session, output = answered_session(pacing_lead_frames=1)
    for packet in media_packets(2):
        session.on_rtp(packet, 100.5)
    session.on_rtcp(build_app(77, b"MARK", (42).to_bytes(4, "big") + (5000 + 320).to_bytes(4, "big")), 100.5)
    assert output.marks == []
    session.on_tick(100.52)
    assert output.marks == [(42, 5320, "played")]
    answer = [m for m in app_messages(parse_rtcp(output.rtcp[-1])) if m[0] == b"MARK"]
    assert answer == [(b"MARK", 1, (42).to_bytes(4, "big") + (5320).to_bytes(4, "big"))]


def test_a_mark_pending_at_hangup_is_answered_cleared_before_the_bye():
    session, output = answered_session()
    session.on_audio(FRAME, 100.02)
    mark = (7).to_bytes(4, "big") + (9999).to_bytes(4, "big")
    session.on_rtcp(build_app(77, b"MARK", mark), 100.5)
    session.on_closed(1000, "caller hung up", 101.0)
    assert output.marks == [(7, 9999, "cleared")]
    assert app_messages(parse_rtcp(output.rtcp[-2])) == [(b"MARK", 2, mark)]
    assert bye_sources(parse_rtcp(output.rtcp[-1]))


@pytest.mark.parametrize(
    "name, subtype, data", [(b"CLER", 0, bytes(8)), (b"MARK", 0, bytes(4)), (b"MARK", 1, bytes(8))],
)
def test_our_app_names_out_of_the_documented_layout_are_counted_and_ignored(name, subtype, data):
    session, output = answered_session()
    session.on_rtcp(build_app(77, name, data, subtype), 100.5)
    assert session.counters.rtp_dropped["rtcp_bad_app"] == 1
    assert output.commands == [{"command": "answer"}] and output.marks == [] and output.closed is None


def test_unknown_commands_are_counted():
    session, output = answered_session()
    session.on_text(b'{"command":"dtmf","digit":"1"}', 100.1)
    assert session.counters.ignored_commands == {"dtmf": 1}
    assert output.closed is None


def test_g711_route_resamples_to_8k_packets():
    session, output = new_session(route=Route(name="asr", host="127.0.0.1", port=5004, codec="PCMA"))
    session.on_text(CONNECT, 100.0)
    for _ in range(5):
        session.on_audio(FRAME, 100.1)
    packets = [parse_rtp(p) for p in output.rtp]
    assert {p.payload_type for p in packets} == {8}
    assert sum(len(p.payload) for p in packets) in range(790, 801)
    assert all(len(p.payload) == 160 for p in packets)
    assert commands.ANSWER


def test_a_second_stream_from_the_route_address_is_refused_and_its_bye_ignored():
    """Issue 9.9: the address alone is checked today; the SSRC of the first valid packet is latched too."""
    session, output = answered_session(pacing_lead_frames=20)
    ours = media_packets(3)
    stray = RtpPacketizer(96, 0x5757, 900, 1).pack(WIRE_FRAME, 320)
    session.on_rtp(ours[0], 100.5)
    session.on_rtp(stray, 100.5)
    session.on_rtp(ours[1], 100.5)
    assert len(output.audio) == 2 and session.counters.rtp_dropped["unexpected_ssrc"] == 1
    session.on_rtcp(build_bye(0x5757, "someone else"), 100.51)
    assert output.closed is None
    assert session.counters.rtp_dropped["rtcp_bye_unknown_ssrc"] == 1
    session.on_rtcp(build_bye(MEDIA_SSRC, "media"), 100.52)
    assert output.closed == (CloseCode.NORMAL, "media service sent RTCP BYE")


def test_a_media_service_that_restarts_with_a_new_ssrc_is_heard_after_two_packets_in_sequence():
    session, output = answered_session(pacing_lead_frames=20)
    session.on_rtp(media_packets(1)[0], 100.5)
    restarted = RtpPacketizer(96, 0x5757, 900, 1)
    for _ in range(3):
        session.on_rtp(restarted.pack(WIRE_FRAME, 320), 100.6)
    assert len(output.audio) == 3  # the first packet of the new stream is its probation
    assert session.return_path.source.ssrc == 0x5757


def test_audio_far_faster_than_real_time_is_dropped_then_the_call_is_closed():
    session, output = answered_session(audio_speed_limit=4.0, audio_burst_seconds=1.0)
    frame = bytes(640)  # 20 ms at 16 kHz
    for _ in range(50):  # one second in hand: all of it passes
        session.on_audio(frame, 100.5)
    sent = len(output.rtp)
    session.on_audio(frame, 100.5)
    assert len(output.rtp) == sent and session.counters.policed_bytes == 640
    for _ in range(50):
        session.on_audio(frame, 100.5)
    assert output.closed == (CloseCode.POLICY_VIOLATION, "audio far faster than real time")


def test_audio_at_real_time_is_never_policed():
    session, output = answered_session(audio_speed_limit=1.0, audio_burst_seconds=0.1)
    for index in range(500):
        session.on_audio(bytes(640), 100.5 + index * 0.02)
    assert session.counters.policed_bytes == 0 and output.closed is None


@pytest.mark.parametrize("text", [b'{"event":"dtmf","digit":"5"}', b"[1, 2]", b"not json", b'"a string"'])
def test_text_that_is_no_command_after_the_answer_is_counted_and_the_call_goes_on(text):
    """Issue 12.1: Sinch may add messages to the stream at any time; they hung up the call with 1007."""
    session, output = answered_session()
    session.on_text(text, 100.1)
    session.on_audio(FRAME, 100.1)
    assert output.closed is None and len(output.rtp) == 1
    assert session.counters.ignored_commands["not_a_command"] == 1


def test_text_that_is_no_command_before_the_connect_is_still_rejected():
    session, output = new_session()
    session.on_text(b'{"event":"dtmf"}', 100.0)
    assert output.commands == [{"command": "reject"}]
    assert output.closed[0] == CloseCode.INVALID_PAYLOAD


# ---- DTMF (route option dtmf) ----------------------------------------------------------------------------


def caller_pressing(digits: str, rate: int) -> bytes:
    """The caller's audio: `digits` as ffmpeg makes them, 100 ms each with 100 ms pauses, over noise."""
    terms, length = sequence(digits, 0.1, 0.1)
    return ffmpeg_pcm([*terms, white_noise(NOISE_DBM0)], rate, length)


def sent_by_payload_type(output: Recorder) -> dict[int, list]:
    packets: dict[int, list] = {}
    for packet in map(parse_rtp, output.rtp):
        packets.setdefault(packet.payload_type, []).append(packet)
    return packets


@pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed (scripts/test installs it)")
def test_dtmf_goes_out_as_telephone_events_on_the_call_stream_and_is_reported():
    route = Route(name="ivr", host="127.0.0.1", port=5004, codec="PCMU", dtmf=101)
    session, output = new_session(route)
    session.on_text(CONNECT, 100.0)  # a 16 kHz call: PCMU at 8 kHz on the wire
    pcm = caller_pressing("42", 16000)
    for index, frame in enumerate(frames(pcm, 16000)):
        session.on_audio(frame, 100.0 + index * 0.02)
    sent = sent_by_payload_type(output)
    audio, events = sent[0], sent[101]
    assert {packet.ssrc for packet in events} == {session.packetizer.ssrc}
    assert [packet.sequence for packet in map(parse_rtp, output.rtp)] == [
        (audio[0].sequence + i) % 65536 for i in range(len(output.rtp))]  # one sequence space, in order
    assert sorted({packet.payload[0] for packet in events}) == [2, 4]
    starts = sorted({(packet.timestamp - audio[0].timestamp) % 2**32 for packet in events})
    assert [start / 8000 for start in starts] == pytest.approx([0.1, 0.3], abs=0.01)  # the wire's 8 kHz clock
    assert [digit for digit, _ in output.digits] == ["4", "2"]
    assert all(abs(seconds - 0.1) < 0.01 for _, seconds in output.digits)
    assert session.counters.rtp_packets_out == len(output.rtp)


@pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed (scripts/test installs it)")
def test_without_the_dtmf_option_tones_are_only_audio():
    session, output = answered_session()
    for index, frame in enumerate(frames(caller_pressing("42", 16000), 16000)):
        session.on_audio(frame, 100.0 + index * 0.02)
    assert set(sent_by_payload_type(output)) == {96}
    assert output.digits == []


@pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed (scripts/test installs it)")
def test_after_a_failover_telephone_events_go_on_the_new_stream():
    route = Route(name="ivr", host="127.0.0.1", port=5004, codec="PCMU", dtmf=101)
    session, output = new_session(route)
    session.on_text(CONNECT, 100.0)
    old_ssrc = session.packetizer.ssrc
    session.restart_stream(100.0)  # the call moved to another target of the route
    pcm = caller_pressing("7", 16000)
    for index, frame in enumerate(frames(pcm, 16000)):
        session.on_audio(frame, 100.0 + index * 0.02)
    sent = sent_by_payload_type(output)
    assert {packet.ssrc for packet in sent[0] + sent[101]} == {session.packetizer.ssrc} != {old_ssrc}
    assert [digit for digit, _ in output.digits] == ["7"]


def test_a_failover_starts_a_new_stream_and_holds_silence_for_sinch():
    session, output = answered_session()
    session.on_audio(FRAME, 100.0)
    for packet in media_packets(3):
        session.on_rtp(packet, 100.01)
    first_ssrc, played = session.packetizer.ssrc, len(output.audio)
    session.restart_stream(100.1)
    session.on_audio(FRAME, 100.1)
    assert parse_rtp(output.rtp[-1]).ssrc == session.packetizer.ssrc != first_ssrc
    session.on_tick(100.2)
    assert output.audio[played:] and set(output.audio[played:]) == {bytes(len(output.audio[0]))}  # silence
    new_target = RtpPacketizer(96, MEDIA_SSRC + 1, 1, 0)
    session.on_rtp(new_target.pack(WIRE_FRAME, 320), 100.21)
    assert session.counters.rtp_dropped["unexpected_ssrc"] == 0  # a fresh return path latches the new stream
    assert session.return_path.receive_stats.received == 1
