"""A route's hold sound as Sinch hears it while a call moves to another target: 16-bit little-endian PCM at the
call's rate, whole 20 ms frames, made once per rate in a worker (at its start: `Worker` asks for every Sinch
rate) and shared by every call of the route."""

from __future__ import annotations

import functools

import numpy as np

from gateway.core.call import FRAME_SECONDS
from gateway.core.codec import StreamResampler
from gateway.shared.hold_sound import HoldSound


@functools.cache
def hold_frames(sound: HoldSound | None, call_rate: int) -> bytes:
    """The sound at `call_rate`, its last frame padded with silence so it loops frame by frame; b"" for no
    sound (the return path then sends silence)."""
    if sound is None:
        return b""
    samples = np.frombuffer(sound.pcm, "<i2")
    if sound.rate != call_rate:
        samples = StreamResampler(sound.rate, call_rate).process(samples)
    frame = round(call_rate * FRAME_SECONDS)
    frames = np.zeros(-(-len(samples) // frame) * frame, "<i2")
    frames[:len(samples)] = samples
    return frames.tobytes()
