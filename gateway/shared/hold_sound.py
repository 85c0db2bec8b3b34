"""A route's hold sound (`hold_sound=PATH`): a WAV file read and checked once, when the configuration is
loaded, and kept in the route; Sinch hears it looped while a call moves to another target (a failover)
instead of silence. The data path never reads the file."""

from __future__ import annotations

import wave

import msgspec

MIN_RATE, MAX_RATE = 8000, 96000  # the WAV's own rate: converted to each call's rate when first needed
MAX_SECONDS = 10.0  # it is looped (a failover lasts about a second); longer costs memory and start time in every worker


class HoldSound(msgspec.Struct, frozen=True):
    path: str  # as configured: what `gateway check` and the worker's log show
    rate: int
    pcm: bytes  # 16-bit signed little-endian mono samples at `rate` (Sinch's own format)


def read_hold_sound(path: str) -> HoldSound:
    """The file's audio; ValueError naming the path and what is wrong with it."""
    try:
        with wave.open(path, "rb") as wav:
            channels, width = wav.getnchannels(), wav.getsampwidth()
            rate, frames = wav.getframerate(), wav.getnframes()
            if channels != 1 or width != 2:
                raise ValueError(f"expected 16-bit mono PCM, got {8 * width}-bit with {channels} channel(s)")
            if not MIN_RATE <= rate <= MAX_RATE:
                raise ValueError(f"sample rate {rate} Hz is not within {MIN_RATE}-{MAX_RATE}")
            if not 0 < frames <= MAX_SECONDS * rate:
                raise ValueError(f"{frames / rate:.1f} s of audio, expected more than none and at most "
                                 f"{MAX_SECONDS:g} s (it is looped)")
            pcm = wav.readframes(frames)
    except (OSError, EOFError, wave.Error, ValueError) as exc:
        raise ValueError(f"hold_sound: {path}: {exc}") from None
    return HoldSound(path, rate, pcm)  # (WAV stores its samples little-endian: as they are read)
