"""DTMF detection in the caller's audio, streaming and sans-IO.

Fed 16-bit little-endian mono PCM at the call's rate in chunks of any size, `DtmfDetector.feed` returns a
`DtmfEvent` when a digit is recognised (with its start, in samples of the stream) and another when it ends.

How it works. Every HOP (5 ms) a WINDOW of 20 ms (Hann) is analysed at the eight DTMF frequencies and their
second harmonics: one matrix product for all the windows a chunk completes (the Goertzel algorithm computes the
same DFT bins one sample at a time; batching them keeps numpy's per-call cost off each window). A window
*hits* a digit when it passes every check below; a digit is recognised after MIN_HITS hits and ends after
MAX_GAP_HOPS windows without one. Where the classic detectors (spandsp's dtmf.c, Asterisk's dsp.c) use one
Goertzel power per tone, this one also takes each tone's phase: the phase advance between consecutive windows
measures the tone's frequency, which a 20 ms window alone cannot resolve finely enough for ITU-T Q.24's
frequency tolerance.

The rates Sinch allows (8000, 16000, 24000, 44100, 48000, 96000 Hz) are all analysed at their own rate: the
windows hold 20 ms of samples whatever the rate, so every threshold below holds unchanged and positions stay
exact, with no decimation filter to carry; the cost grows with the rate (see docs/protocol.md).

Thresholds and their sources (ITU-T Q.24 Annex A gives each administration's limits; these are the
AT&T/Bellcore column, which TIA-464 and Telcordia GR-506 share):
- frequency: a tone within ±1.5 % of its nominal frequency must be accepted, one beyond ±3.5 % rejected: the
  limit is set between them, at FREQUENCY_TOLERANCE = 2.5 %;
- twist (level difference between the two tones): accepted up to 8 dB with the low group louder ("normal"
  twist, the loss of a line is larger at high frequencies) and up to 4 dB with the high group louder
  ("reverse"); the limits sit 1.5 dB beyond, for the measurement's own error (noise, a tone off-centre);
- duration: a tone of 40 ms or more is a digit, one of 23 ms or less is not; an interruption of up to 10 ms
  does not split a digit, a pause of 40 ms does;
- level: a tone from -25 dBm0 up is accepted, one of -55 dBm0 or less is not; MIN_TONE_DBM0 is -36 dBm0;
- talk-off (no digits from speech or music), as the classic detectors do it: each tone must stand RELATIVE_PEAK
  above the other tones of its group (spandsp and Asterisk: 8 dB), the two tones must hold TONE_TO_TOTAL of the
  window's power (spandsp's "DTMF_TO_TOTAL_ENERGY"), and the second harmonic of each tone must be weak
  (voiced speech is rich in harmonics, a DTMF generator's output is not: Mitel and TI application notes).

Levels: 0 dBm0 is a sine 3.14 dB below full scale (ITU-T G.711; spandsp's reference).
"""

from __future__ import annotations

import cmath
import math
from dataclasses import dataclass

import numpy as np

DIGITS = "123A456B789C*0#D"  # row by row: index = 4 * row + column
ROW_HZ = (697.0, 770.0, 852.0, 941.0)
COLUMN_HZ = (1209.0, 1336.0, 1477.0, 1633.0)
_TONES = ROW_HZ + COLUMN_HZ
_FREQUENCIES = _TONES + tuple(2 * f for f in _TONES)  # the tones, then their second harmonics

HOP_SECONDS = 0.005
WINDOW_HOPS = 4  # window: 20 ms, one neighbouring row tone (73 Hz away) falls outside its main lobe's core

FREQUENCY_TOLERANCE = 0.025
NORMAL_TWIST_DB = 9.5
REVERSE_TWIST_DB = 5.5
MIN_TONE_DBM0 = -36.0
RELATIVE_PEAK_DB = 8.0
TONE_TO_TOTAL = 0.6
HARMONIC_DB = -15.0  # second harmonic at most this far below its tone
MIN_HITS = 6  # windows: a 40 ms tone gives 7 or 8, a 23 ms one 4 at most
MAX_GAP_HOPS = 6  # windows without a hit that end a digit: a 10 ms break gives 4 at most, a 40 ms pause 8
EDGE_HOPS = 1.0  # a hit window reaches this many hops beyond the tone at either end (calibrated)

FULL_SCALE_DBM0 = 3.14  # a full-scale sine (ITU-T G.711)
_FULL_SCALE_POWER = 32768.0**2 / 2


def _db(ratio_db: float) -> float:
    return 10.0 ** (ratio_db / 10.0)


def dbm0(power: float) -> float:
    """The level in dBm0 of a mean power in squared sample units."""
    return 10.0 * math.log10(max(power, 1e-12) / _FULL_SCALE_POWER) + FULL_SCALE_DBM0


@dataclass(frozen=True, slots=True)
class DtmfEvent:
    """A digit recognised (`ended` False: `duration` is how long it has lasted so far) or over (`ended` True).
    `start` and `duration` count samples of the stream fed to the detector; `level` is the tone pair's power
    in dBm0."""

    digit: str
    start: int
    duration: int
    ended: bool
    level: float


class DtmfDetector:
    """Streaming DTMF detector for one call's upstream audio at `rate` Hz."""

    def __init__(self, rate: int) -> None:
        if rate <= 0:
            raise ValueError(f"sample rate {rate} must be positive")
        self.rate = rate
        self.hop = hop = round(rate * HOP_SECONDS)
        self.window = window = WINDOW_HOPS * hop
        self.position = 0  # samples fed so far
        taper = np.hanning(window + 2)[1:-1]  # no zero end points: every sample counts
        n = np.arange(window)
        # Columns cos, -sin per frequency: viewed as complex, the product is each window's DFT at it, scaled so
        # that |X|^2 is the power of a sine there (A^2 / 2); the taper, scaled to unit sum, weights the power.
        basis = np.empty((window, 2 * len(_FREQUENCIES)), np.float32)
        phase = 2 * np.pi * np.outer(n, _FREQUENCIES) / rate
        scale = math.sqrt(2.0) / taper.sum()
        basis[:, 0::2] = (taper * scale)[:, None] * np.cos(phase)
        basis[:, 1::2] = -(taper * scale)[:, None] * np.sin(phase)
        self._basis = basis
        self._taper = (taper / taper.sum()).astype(np.float32)
        # A tone at its nominal frequency advances by this phase from one window to the next.
        self._hop_turn = [2 * math.pi * f * hop / rate for f in _TONES]
        # A row tone's second harmonic lies within 71 Hz of the column tone of digits 2, 6 and C, inside the
        # window's main lobe (2 bins wide): there the column tone, not speech, fills the harmonic's bin.
        bin_hz = rate / window
        self._row_harmonic_clear = [[abs(2 * r - c) > 2 * bin_hz for r in ROW_HZ] for c in COLUMN_HZ]
        self._min_tone_power = _FULL_SCALE_POWER * _db(MIN_TONE_DBM0 - FULL_SCALE_DBM0)
        self._buffer = np.zeros(0, np.float32)
        self._fill = 0  # valid samples in the buffer; its first one is the next window's first
        self._windows = self._buffer[:0]
        self._next_window = 0  # index of the next window, counted from the stream's start
        self._previous: list[complex] | None = None  # the last window's DFT at the eight tones
        # The digit being seen: index into DIGITS or -1, its hits, first and last hit window, misses since.
        self._digit = -1
        self._hits = 0
        self._first_hit = 0
        self._last_hit = 0
        self._misses = 0
        self._power_sum = 0.0
        self._reported = False

    def feed(self, pcm: bytes | bytearray | memoryview) -> list[DtmfEvent]:
        """The next chunk of the stream (whole samples); the events it completes."""
        if len(pcm) & 1:
            raise ValueError(f"PCM chunk of {len(pcm)} bytes: 16-bit samples come in whole pairs of bytes")
        samples = np.frombuffer(pcm, "<i2")
        self.position += len(samples)
        self._reserve(len(samples))
        end = self._fill + len(samples)
        self._buffer[self._fill : end] = samples
        self._fill = end
        count = (end - self.window) // self.hop + 1 if end >= self.window else 0
        if count <= 0:
            return []
        windows = self._windows[:count]
        spectrum = (windows @ self._basis).view(np.complex64)
        total = (windows * windows) @ self._taper
        if self._digit < 0 and not self._may_hold_a_digit(spectrum, total):
            # Silence, speech, music: no window passes the level checks and no digit is in progress, so the
            # per-window decisions would all be misses. Only the last window's tones are kept (for the phase).
            self._previous = spectrum[-1, :8].tolist()
            self._next_window += count
            events = []
        else:
            events = self._decide(spectrum.tolist(), total.tolist())
        done = count * self.hop
        self._buffer[: end - done] = self._buffer[done:end]
        self._fill = end - done
        return events

    def _may_hold_a_digit(self, spectrum: np.ndarray, total: np.ndarray) -> bool:
        """Whether any window passes `_classify`'s level checks (a tone loud enough in each group, the pair
        holding TONE_TO_TOTAL of the power): most of a call's audio fails them, and this costs a few numpy calls
        per chunk where `_decide` costs microseconds per window."""
        peaks = np.abs(spectrum[:, :8]).reshape(-1, 2, 4).max(axis=2).tolist()  # per window: row, column
        floor = self._min_tone_power
        return any(
            row * row >= floor and column * column >= floor and row * row + column * column >= TONE_TO_TOTAL * t
            for (row, column), t in zip(peaks, total.tolist(), strict=True)
        )

    def _reserve(self, chunk: int) -> None:
        size = self._fill + chunk
        if size > len(self._buffer):
            buffer = np.zeros(max(size, 2 * len(self._buffer), self.window), np.float32)
            buffer[: self._fill] = self._buffer[: self._fill]
            self._buffer = buffer
            self._windows = np.lib.stride_tricks.sliding_window_view(buffer, self.window)[:: self.hop]

    def _decide(self, spectra: list[list[complex]], powers: list[float]) -> list[DtmfEvent]:
        events: list[DtmfEvent] = []
        for spectrum, total in zip(spectra, powers, strict=True):
            index = self._next_window
            self._next_window += 1
            digit, pair_power = self._classify(spectrum, total)
            self._previous = spectrum
            if digit < 0:
                self._miss(events)
            elif digit == self._digit:
                self._hits += 1
                self._last_hit = index
                self._misses = 0
                self._power_sum += pair_power
                if not self._reported and self._hits >= MIN_HITS:
                    self._reported = True
                    events.append(self._event(ended=False))
            else:
                if self._reported:
                    events.append(self._event(ended=True))
                self._digit, self._hits, self._first_hit, self._last_hit = digit, 1, index, index
                self._misses, self._power_sum, self._reported = 0, pair_power, False
        return events

    def _miss(self, events: list[DtmfEvent]) -> None:
        if self._digit < 0:
            return
        self._misses += 1
        if self._misses >= MAX_GAP_HOPS:
            if self._reported:
                events.append(self._event(ended=True))
            self._digit, self._reported = -1, False

    @property
    def lasting(self) -> int:
        """How long the digit recognised and not yet ended has lasted so far, in samples (as its end event will
        say, should it end now); 0 when there is none."""
        return self._span()[1] if self._reported else 0

    def _span(self) -> tuple[int, int]:
        """The digit being seen: its start and duration in samples, from its first and last hit windows."""
        edge = round(EDGE_HOPS * self.hop)
        start = self._first_hit * self.hop + edge
        return start, self._last_hit * self.hop + self.window - edge - start

    def _event(self, ended: bool) -> DtmfEvent:
        start, duration = self._span()
        return DtmfEvent(DIGITS[self._digit], start, duration, ended, dbm0(self._power_sum / self._hits))

    def _classify(self, spectrum: list[complex], total: float) -> tuple[int, float]:
        """The digit this window holds (index into DIGITS) and the pair's power, or (-1, 0)."""
        powers = [abs(x) ** 2 for x in spectrum]
        row = max(range(4), key=powers.__getitem__)
        column = 4 + max(range(4), key=lambda i: powers[4 + i])
        row_power, column_power = powers[row], powers[column]
        pair = row_power + column_power
        if row_power < self._min_tone_power or column_power < self._min_tone_power:
            return -1, 0.0
        if pair < TONE_TO_TOTAL * total:
            return -1, 0.0
        if row_power > column_power * _db(NORMAL_TWIST_DB) or column_power > row_power * _db(REVERSE_TWIST_DB):
            return -1, 0.0
        peak = _db(RELATIVE_PEAK_DB)
        for i in range(8):
            if i != row and i != column and powers[i] * peak > (row_power if i < 4 else column_power):
                return -1, 0.0
        harmonic = _db(HARMONIC_DB)
        if powers[8 + column] > column_power * harmonic or (
            self._row_harmonic_clear[column - 4][row] and powers[8 + row] > row_power * harmonic
        ):
            return -1, 0.0
        previous = self._previous
        if previous is None:
            return -1, 0.0
        for tone in (row, column):
            turn = cmath.phase(spectrum[tone] * previous[tone].conjugate()) - self._hop_turn[tone]
            offset = math.remainder(turn, 2 * math.pi) * self.rate / (2 * math.pi * self.hop)
            if abs(offset) > FREQUENCY_TOLERANCE * _TONES[tone]:
                return -1, 0.0
        return 4 * row + column - 4, pair
