import numpy as np

from loadtest import marker
from loadtest.audio import AudioSource, frame_bytes
from loadtest.histogram import Histogram
from loadtest.streams import StreamStats


def marked_frame(rate: int = 16000, tag: int = 0x01020304, seq: int = 77, sent_us: int = 123_456_789) -> bytearray:
    frame = bytearray(AudioSource().frame(rate, 0, 5))
    marker.write_le(frame, tag, seq, sent_us)
    return frame


def test_marker_reads_back_from_le_pcm_and_from_the_byte_swapped_rtp_payload():
    frame = marked_frame()
    assert marker.read_le(frame) == (0x01020304, 77, 123_456_789)
    network_order = np.frombuffer(bytes(frame), "<i2").astype(">i2").tobytes()  # what the gateway sends as L16
    assert marker.read_be(network_order) == (0x01020304, 77, 123_456_789)
    assert marker.read_le(network_order) is None


def test_concealment_fade_and_silence_are_not_markers():
    frame = np.frombuffer(bytes(marked_frame()), "<i2")
    faded = frame * (1 - np.arange(len(frame)) / len(frame))  # the gateway's loss concealment
    assert marker.read_le(faded.astype("<i2").tobytes()) is None
    assert marker.read_le(bytes(640)) is None


def test_time_wraps_on_48_bits():
    assert marker.elapsed_us(5, marker.TIME_MASK - 4) == 10


def test_audio_is_speech_like_not_silence():
    for rate in (8000, 16000, 44100, 96000):
        frames = [np.frombuffer(bytes(AudioSource().frame(rate, 1, i)), "<i2") for i in range(0, 100, 7)]
        assert all(len(f) * 2 == frame_bytes(rate) for f in frames)
        levels = [float(np.sqrt(np.mean(f.astype(float) ** 2))) for f in frames]
        assert max(levels) > 3000  # loud syllables ...
        assert max(levels) / (min(levels) + 1) > 3  # ... and quieter stretches between them


def feed(stream: StreamStats, upstream: Histogram, packets: list[tuple[int, int]], payload: bytes = bytes(640)):
    for i, (seq, timestamp) in enumerate(packets):
        stream.on_packet(seq & 0xFFFF, timestamp & 0xFFFFFFFF, payload, 1_000_000 * i, upstream)


def test_stream_continuity_counts_gaps_duplicates_reordering_and_timestamp_errors():
    stream = StreamStats(1, ("127.0.0.1", 5000), 96, 0)
    upstream = Histogram()
    base_seq, base_ts = 65530, 2**32 - 640  # both wrap inside the sequence
    order = [0, 1, 2, 3, 5, 6, 6, 8, 7, 9]  # 4 lost, 6 twice, 7 after 8
    packets = [(base_seq + i, base_ts + 320 * i) for i in order]
    packets.append((base_seq + 10, base_ts + 320 * 10 + 7))  # wrong timestamp step
    feed(stream, upstream, packets)
    assert (stream.packets, stream.gaps, stream.duplicates) == (11, 2, 1)
    assert stream.reordered == 1
    assert stream.lost == 1  # two forward jumps skipped two packets; one of them came late
    assert stream.timestamp_errors == 1


def test_upstream_latency_comes_from_the_marker():
    stream = StreamStats(1, ("127.0.0.1", 5000), 96, 0)
    upstream = Histogram()
    payload = np.frombuffer(bytes(marked_frame(sent_us=1_000)), "<i2").astype(">i2").tobytes()
    stream.on_packet(1, 0, payload, 3_500_000, upstream)  # arrived at 3500 µs
    assert (upstream.count, upstream.max) == (1, 2500)
