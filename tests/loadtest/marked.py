"""A marked test frame, as the load generator sends it."""

from loadtest.shared import marker
from loadtest.shared.audio import AudioSource


def marked_frame(rate: int = 16000, tag: int = 0x01020304, seq: int = 77, sent_us: int = 123_456_789) -> bytearray:
    frame = bytearray(AudioSource().frame(rate, 0, 5))
    marker.write_le(frame, tag, seq, sent_us)
    return frame
