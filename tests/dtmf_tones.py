"""DTMF test signals made by ffmpeg's `aevalsrc` generator (not our code): digits at chosen levels, frequency
offsets and twist, with white noise."""

from __future__ import annotations

import math
import shutil
import subprocess

from gateway.core.dtmf import COLUMN_HZ, DIGITS, FULL_SCALE_DBM0, ROW_HZ

FFMPEG = shutil.which("ffmpeg")
TONE_DBM0 = -10.0  # each tone of a test digit, as telephones send them (Q.24: -25 to 0 dBm0 must work)
NOISE_DBM0 = -27.0  # white noise: 17 dB below each tone (SNR 14 dB for the pair)


def amplitude(dbm0: float) -> float:
    """Peak amplitude, as a fraction of full scale, of a sine at `dbm0`."""
    return 10 ** ((dbm0 - FULL_SCALE_DBM0) / 20)


def tone(digit: str, start: float, seconds: float, *, dbm0: float = TONE_DBM0, row_shift: float = 0.0,
         column_shift: float = 0.0, twist_db: float = 0.0) -> str:
    """An aevalsrc term: `digit`'s two tones from `start` for `seconds`, each frequency shifted by a fraction,
    the low (row) tone `twist_db` louder than the high (column) one around `dbm0`."""
    index = DIGITS.index(digit)
    row = ROW_HZ[index // 4] * (1 + row_shift)
    column = COLUMN_HZ[index % 4] * (1 + column_shift)
    low, high = amplitude(dbm0 + twist_db / 2), amplitude(dbm0 - twist_db / 2)
    return during(start, seconds, f"{low}*sin(2*PI*{row}*t)+{high}*sin(2*PI*{column}*t)")


def during(start: float, seconds: float, term: str) -> str:
    """`term` from `start` for `seconds`, silence elsewhere (ffmpeg's if() evaluates `term` only then)."""
    return f"if(gte(t,{start})*lt(t,{start + seconds}),{term},0)"


def white_noise(dbm0: float) -> str:
    """An aevalsrc term: uniform white noise of that power (a uniform variable on [-a, a] has power a^2/3)."""
    power = amplitude(dbm0) ** 2 / 2
    return f"{math.sqrt(3 * power)}*(2*random(0)-1)"


def ffmpeg_pcm(terms: list[str], rate: int, seconds: float) -> bytes:
    expression = "+".join(terms) or "0"
    return subprocess.run(
        [FFMPEG, "-v", "error", "-f", "lavfi", "-i", f"aevalsrc='{expression}':s={rate}:d={seconds}",
         "-f", "s16le", "-ac", "1", "-"],
        check=True, capture_output=True, timeout=30,
    ).stdout


def sequence(digit_string: str, seconds: float, pause: float, first: float = 0.1, **tone_options) -> tuple[
        list[str], float]:
    """aevalsrc terms for the digits one after the other, and the signal's length."""
    terms = [tone(digit, first + i * (seconds + pause), seconds, **tone_options)
             for i, digit in enumerate(digit_string)]
    return terms, first + len(digit_string) * (seconds + pause) + 0.1
