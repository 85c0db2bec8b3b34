import numpy as np

from loadtest.media.streams import StreamStats
from loadtest.shared.histogram import Histogram
from tests.loadtest.marked import marked_frame


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
