"""Speech-like test audio: a voiced signal with a wandering pitch, formant-shaped harmonics and a syllable
envelope, so that codecs, resamplers and VAD-like code see something like a voice rather than silence."""

from __future__ import annotations

import functools

import numpy as np

FRAME_SECONDS = 0.020
LOOP_SECONDS = 2.0  # a whole number of frames, looped by each call from its own offset
VOICES = 4  # different pitches, so concurrent calls do not carry identical audio
FORMANTS_HZ = (700.0, 1200.0, 2600.0)


def frame_bytes(rate: int) -> int:
    """Bytes of one 20 ms frame of 16-bit mono PCM (protocol notes §2.4: 640 at 16 kHz, 1764 at 44.1 kHz)."""
    return round(rate * FRAME_SECONDS) * 2


@functools.cache
def speech_loop(rate: int, voice: int) -> bytes:
    """LOOP_SECONDS of 16-bit little-endian PCM, deterministic for (rate, voice)."""
    samples = round(rate * LOOP_SECONDS)
    t = np.arange(samples) / rate
    base = 110.0 + 35.0 * voice
    pitch = base * (1 + 0.15 * np.sin(2 * np.pi * 0.7 * t) + 0.05 * np.sin(2 * np.pi * 3.1 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    signal = np.zeros(samples)
    for harmonic in range(1, 30):
        freq = base * harmonic
        if freq > rate / 2 * 0.9:
            break
        gain = sum(1.0 / (1.0 + ((freq - f) / 150.0) ** 2) for f in FORMANTS_HZ) / harmonic**0.5
        signal += gain * np.sin(harmonic * phase)
    # Syllables at ~4 Hz with a pause every loop, like speech with breaths.
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t + voice), 0, None) ** 0.6
    envelope *= np.where(t % LOOP_SECONDS < LOOP_SECONDS * 0.85, 1.0, 0.05)
    noise = np.random.default_rng(voice).normal(0, 0.01, samples)
    signal = signal / np.max(np.abs(signal)) * envelope + noise
    return (np.clip(signal * 0.6, -1, 1) * 32767).astype("<i2").tobytes()


class AudioSource:
    """Hands out 20 ms frames of the speech loops. One reusable buffer per rate: picows copies (and masks)
    client frames on send, so the next call may overwrite it at once, and no frame is allocated."""

    def __init__(self) -> None:
        self._loops: dict[tuple[int, int], tuple[memoryview, int]] = {}
        self._buffers: dict[int, bytearray] = {}

    def frame(self, rate: int, voice: int, index: int) -> bytearray:
        key = (rate, voice % VOICES)
        entry = self._loops.get(key)
        if entry is None:
            pcm = speech_loop(rate, voice % VOICES)
            entry = self._loops[key] = (memoryview(pcm), len(pcm) // frame_bytes(rate))
        view, frames = entry
        size = frame_bytes(rate)
        buffer = self._buffers.get(rate)
        if buffer is None:
            buffer = self._buffers[rate] = bytearray(size)
        start = (index % frames) * size
        buffer[:] = view[start:start + size]
        return buffer
