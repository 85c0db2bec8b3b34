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

    def send_frame(self, frame: bytes, now: float) -> None:
        self.sent.append((frame, now))


def path(**options) -> tuple[ReturnPath, list[tuple[bytes, float]]]:
    sink = Recorder()
    settings = {"jitter_max_wait": 0.06, "pacing_lead_frames": 3, "queue_seconds": 1.0} | options
    return ReturnPath(DownstreamDecoder("L16", RATE, RATE), RATE, FRAME, CallCounters(), sink, 0.0,
                      **settings), sink.sent


def packets(count: int, samples: int = 160):
    packetizer = RtpPacketizer(96, 7, 100, 0)
    return [parse_rtp(packetizer.pack(bytes(2 * samples), samples)) for _ in range(count)]


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
    assert sent[-1][0] == bytes(FRAME)  # the partial frame, padded with silence
    return_path.on_tick(1.04)
    assert done == [1.02]
    return_path.receive(packets(1)[0], 332, 1.05)
    assert return_path.counters.rtp_dropped["after_hangup"] == 1
