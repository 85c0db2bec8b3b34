"""The per-frame marker: a sequence number and send time written over the first samples of each frame.

Nine 16-bit samples: magic, call tag (2), frame sequence (2), send time in µs of CLOCK_MONOTONIC (3), check.
CLOCK_MONOTONIC is one clock for every process on a machine, so the media simulator can subtract the
generator's send time from its own arrival time. The samples are the unit (not bytes), so the same marker
reads back from Sinch's little-endian PCM and from the byte-swapped L16 RTP payload (RFC 3551 §4.5.11) alike.
A lossy codec (G.711) or resampling on the route destroys it: then only frame counts can be measured.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

MAGIC = 0x5AA5
CHECK_SEED = 0xC35A
SAMPLES = 9
SIZE = 2 * SAMPLES  # bytes
TIME_MASK = (1 << 48) - 1
LE = struct.Struct("<9H")  # Sinch PCM: 16-bit little-endian
BE = struct.Struct(">9H")  # RTP L16: network order
MAGIC_LE = struct.pack("<H", MAGIC)
MAGIC_BE = struct.pack(">H", MAGIC)


class Marker(NamedTuple):
    tag: int
    seq: int
    sent_us: int


def _check(words: tuple[int, ...]) -> int:
    """Mixes every word so that a faded repeat of a marked frame (the gateway's loss concealment scales
    samples) does not read as a valid marker."""
    value = CHECK_SEED
    for word in words:
        value = ((value * 31) ^ word) & 0xFFFF
    return value


def _words(tag: int, seq: int, sent_us: int) -> tuple[int, ...]:
    sent_us &= TIME_MASK
    return (MAGIC, tag & 0xFFFF, (tag >> 16) & 0xFFFF, seq & 0xFFFF, (seq >> 16) & 0xFFFF,
            sent_us & 0xFFFF, (sent_us >> 16) & 0xFFFF, sent_us >> 32)


def write_le(buffer: bytearray, tag: int, seq: int, sent_us: int) -> None:
    """Overwrite the first SIZE bytes of a little-endian PCM frame with the marker."""
    words = _words(tag, seq, sent_us)
    LE.pack_into(buffer, 0, *words, _check(words))


def _decode(words: tuple[int, ...]) -> Marker | None:
    if words[0] != MAGIC or _check(words[:8]) != words[8]:
        return None
    return Marker(words[1] | words[2] << 16, words[3] | words[4] << 16, words[5] | words[6] << 16 | words[7] << 32)


def read_le(pcm: bytes | memoryview) -> Marker | None:
    """The marker at the start of a Sinch PCM frame, or None (concealed audio, silence, lossy codec)."""
    if len(pcm) < SIZE or pcm[:2] != MAGIC_LE:
        return None
    return _decode(LE.unpack_from(pcm))


def read_be(payload: bytes | memoryview) -> Marker | None:
    """The marker at the start of an L16 RTP payload, or None."""
    if len(payload) < SIZE or payload[:2] != MAGIC_BE:
        return None
    return _decode(BE.unpack_from(payload))


def elapsed_us(now_us: int, sent_us: int) -> int:
    """now - sent on the 48-bit wrapped clock."""
    return (now_us - sent_us) & TIME_MASK
