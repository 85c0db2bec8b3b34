"""The return path alone (gateway.core.return_path): pacing, queue cap, backpressure and the BYE playout.
The session tests cover it too, through the call's state machine."""

from gateway.core.call import CallCounters, FrameSink
from gateway.core.codec import DownstreamDecoder
from gateway.core.return_path import ReturnPath
from gateway.core.rtp import RtpPacketizer, parse_rtp

RATE = 8000
FRAME = 320  # bytes of 20 ms L16 at 8 kHz


class Recorder(FrameSink):
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, float]] = []
        self.marks: list[tuple[int, int, bool]] = []

    def send_frame(self, frame: bytes, now: float) -> None:
        self.sent.append((frame, now))

    def mark_settled(self, mark_id: int, timestamp: int, played: bool) -> None:
        self.marks.append((mark_id, timestamp, played))


def path_and_sink(**options) -> tuple[ReturnPath, Recorder]:
    sink = Recorder()
    settings = {"jitter_max_wait": 0.06, "pacing_lead_frames": 3, "queue_seconds": 1.0} | options
    return ReturnPath(DownstreamDecoder("L16", RATE, RATE), RATE, FRAME, CallCounters(), sink, 0.0,
                      **settings), sink


def path(**options) -> tuple[ReturnPath, list[tuple[bytes, float]]]:
    return_path, sink = path_and_sink(**options)
    return return_path, sink.sent


def packets(count: int, samples: int = 160):
    """Frame n carries the 16-bit value n in every sample (so what was played can be told apart); the first
    packet's RTP timestamp is 0."""
    packetizer = RtpPacketizer(96, 7, 100, 0)
    return [parse_rtp(packetizer.pack(n.to_bytes(2, "big") * samples, samples)) for n in range(count)]


def frame_numbers(sent: list[tuple[bytes, float]]) -> list[int]:
    return [int.from_bytes(frame[:2], "little") for frame, _ in sent]


def test_a_burst_goes_out_at_real_time_after_the_lead():
    return_path, sent = path()
    for packet in packets(10):
        return_path.receive(packet, 332, 1.0)
    assert len(sent) == 3 and return_path.pending  # the lead, then the clock
    for tick in range(1, 8):
        return_path.on_tick(1.0 + 0.02 * tick)
    assert len(sent) == 10 and not return_path.pending
    assert [now for _, now in sent[3:]] == [1.0 + 0.02 * tick for tick in range(1, 8)]


def test_the_queue_is_capped_oldest_frames_first():
    return_path, sent = path(queue_seconds=0.1, pacing_lead_frames=1)
    for packet in packets(20):
        return_path.receive(packet, 332, 1.0)
    assert return_path.queued_bytes == 5 * FRAME
    assert return_path.counters.return_queue_dropped_bytes == 14 * FRAME
    assert len(sent) == 1  # the lead: 1 + 5 + 14 = 20


def test_paused_output_holds_audio_until_resumed():
    return_path, sent = path()
    return_path.set_paused(True, 1.0)
    for packet in packets(2):
        return_path.receive(packet, 332, 1.0)
    assert not sent and return_path.queued_bytes == 2 * FRAME
    return_path.set_paused(False, 1.0)
    assert len(sent) == 2


def test_after_a_bye_what_was_sent_is_played_then_the_callback_once():
    return_path, sent = path(pacing_lead_frames=1)
    done: list[float] = []
    for packet in packets(3, samples=100):  # 600 bytes: one whole frame and a partial one
        return_path.receive(packet, 212, 1.0)
    return_path.play_out_then(done.append, 1.0)
    return_path.on_tick(1.02)
    assert done == [1.02] and len(sent) == 2
    assert sent[-1][0] == b"\x01\x00" * 40 + b"\x02\x00" * 100 + bytes(40)  # the partial frame, padded
    return_path.on_tick(1.04)
    assert done == [1.02]
    return_path.receive(packets(1)[0], 332, 1.05)
    assert return_path.counters.rtp_dropped["after_hangup"] == 1


def test_a_barge_in_at_a_timestamp_drops_queued_held_and_late_audio_at_or_before_it():
    """Issue 12.3: frames 0-2 played (the lead), 3-5 queued, 7 held by the jitter buffer waiting for 6, which
    arrives after the CLER. A CLER at frame 6's timestamp drops 3-6 and 7 stays; 8 plays after 7."""
    return_path, sent = path()
    stream = packets(9)
    for packet in [*stream[:6], stream[7]]:
        return_path.receive(packet, 332, 1.0)
    assert frame_numbers(sent) == [0, 1, 2]
    return_path.clear_through(6 * 160)
    return_path.receive(stream[6], 332, 1.01)  # sent before the barge-in, arriving after it
    return_path.receive(stream[8], 332, 1.01)
    for tick in range(1, 6):
        return_path.on_tick(1.0 + 0.02 * tick)
    assert frame_numbers(sent) == [0, 1, 2, 7, 8]
    assert return_path.counters.rtp_dropped["cleared"] == 1


def test_a_barge_in_without_a_timestamp_drops_everything_received_so_far_only():
    return_path, sent = path()
    stream = packets(8)
    for packet in stream[:5]:
        return_path.receive(packet, 332, 1.0)
    return_path.clear_received()
    assert return_path.queued_bytes == 0
    for packet in stream[5:]:
        return_path.receive(packet, 332, 1.1)
    for tick in range(1, 6):
        return_path.on_tick(1.1 + 0.02 * tick)
    assert frame_numbers(sent) == [0, 1, 2, 5, 6, 7]


def test_a_mark_is_answered_played_once_its_frame_has_gone_out():
    return_path, sink = path_and_sink()
    for packet in packets(6):
        return_path.receive(packet, 332, 1.0)
    return_path.add_mark(1, 2 * 160 + 159)  # the last sample of frame 2: already sent
    return_path.add_mark(2, 4 * 160)  # frame 4: queued
    assert sink.marks == [(1, 479, True)]
    return_path.on_tick(1.02)  # frame 3
    assert sink.marks == [(1, 479, True)]
    return_path.on_tick(1.04)  # frame 4
    assert sink.marks == [(1, 479, True), (2, 640, True)]
    return_path.stop()
    assert len(sink.marks) == 2  # each mark answered exactly once


def test_marks_dropped_by_a_barge_in_the_queue_cap_or_the_end_are_answered_cleared():
    return_path, sink = path_and_sink(queue_seconds=0.1, pacing_lead_frames=1)
    stream = packets(12)
    return_path.receive(stream[0], 332, 1.0)
    return_path.add_mark(10, 1 * 160)  # dropped by the queue's cap below
    return_path.add_mark(11, 7 * 160)  # dropped by the barge-in
    return_path.add_mark(12, 11 * 160)  # still pending when the call ends
    for packet in stream[1:11]:
        return_path.receive(packet, 332, 1.0)
    assert sink.marks == [(10, 160, False)]
    return_path.clear_through(8 * 160)
    assert sink.marks == [(10, 160, False), (11, 1120, False)]
    return_path.stop()
    assert sink.marks == [(10, 160, False), (11, 1120, False), (12, 1760, False)]


def test_audio_sent_before_a_barge_in_arriving_after_it_holds_up_nothing():
    """Frame 6 (cleared) arrives late with nothing held: frame 7 plays at once, nothing concealed between."""
    return_path, sent = path()
    stream = packets(8)
    for packet in stream[:6]:
        return_path.receive(packet, 332, 1.0)
    return_path.clear_through(6 * 160)
    return_path.receive(stream[6], 332, 1.06)
    return_path.receive(stream[7], 332, 1.06)
    assert frame_numbers(sent) == [0, 1, 2, 7]
    assert return_path.jitter_buffer.lost_packets == 0


def test_holding_paces_silence_until_the_media_services_first_audio_plays():
    """A failover: the new target has sent nothing yet, and Sinch hears silence at real time meanwhile."""
    return_path, sent = path()
    return_path.hold(b"")
    for tick in range(11):
        return_path.on_tick(tick * 0.01)
    assert [frame for frame, _ in sent] == [bytes(FRAME)] * 8  # the 3-frame lead, then one per 20 ms
    assert return_path.pending
    for index, packet in enumerate(packets(5)):
        return_path.receive(packet, 172, 0.1 + index * 0.02)
        return_path.on_tick(0.1 + index * 0.02)
    for tick in range(20):
        return_path.on_tick(0.2 + tick * 0.01)
    assert frame_numbers(sent[8:]) == [0, 1, 2, 3, 4]  # no silence between or after the audio
    assert not return_path.pending


def test_holding_with_a_hold_sound_loops_it_frame_by_frame_until_the_audio_plays():
    return_path, sent = path()
    sound = b"".join(n.to_bytes(2, "little") * (FRAME // 2) for n in (100, 101, 102))  # three frames
    return_path.hold(sound)
    for tick in range(11):
        return_path.on_tick(tick * 0.01)
    assert frame_numbers(sent) == [100, 101, 102, 100, 101, 102, 100, 101]  # the lead, then one per 20 ms
    return_path.receive(packets(1)[0], 172, 0.12)
    for tick in range(10):
        return_path.on_tick(0.12 + tick * 0.01)
    assert frame_numbers(sent[8:]) == [0]  # the media service's audio, and no hold sound after it
