import numpy as np

from loadtest.shared import marker
from loadtest.shared.audio import AudioSource, frame_bytes
from tests.loadtest.marked import marked_frame


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
