"""The DTMF detector against tones made by ffmpeg (its `aevalsrc` generator, not our code), at the ITU-T Q.24
limits, with noise; talk-off against speech from espeak-ng and music-like chords from ffmpeg."""

from __future__ import annotations

import random
import shutil
import subprocess

import numpy as np
import pytest

from gateway.core.dtmf import DIGITS, DtmfDetector, DtmfEvent
from tests.dtmf_tones import FFMPEG, NOISE_DBM0, TONE_DBM0, during, ffmpeg_pcm, sequence, tone, white_noise

ESPEAK = shutil.which("espeak-ng")
pytestmark = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed (scripts/test installs it)")

RATES = (8000, 16000)
FRAME_SECONDS = 0.02  # the call's frames: timing must be right within one


def detect(pcm: bytes, rate: int, chunk_seconds: float = FRAME_SECONDS) -> list[DtmfEvent]:
    detector = DtmfDetector(rate)
    chunk = 2 * round(rate * chunk_seconds)
    events = [event for at in range(0, len(pcm), chunk) for event in detector.feed(pcm[at:at + chunk])]
    return events


def ended(events: list[DtmfEvent]) -> list[DtmfEvent]:
    return [event for event in events if event.ended]


def digits(events: list[DtmfEvent]) -> str:
    return "".join(event.digit for event in ended(events))


# ---- every digit, where and how long ----------------------------------------------------------------------


@pytest.mark.parametrize("rate", RATES)
def test_every_digit_is_detected_once_with_its_start_and_duration(rate):
    seconds, pause = 0.1, 0.1
    terms, length = sequence(DIGITS, seconds, pause)
    events = detect(ffmpeg_pcm([*terms, white_noise(NOISE_DBM0)], rate, length), rate)
    assert digits(events) == DIGITS
    assert [e.digit for e in events if not e.ended] == list(DIGITS)  # one start per digit, before its end
    for i, event in enumerate(ended(events)):
        start = 0.1 + i * (seconds + pause)
        assert abs(event.start / rate - start) < FRAME_SECONDS, event
        assert abs(event.duration / rate - seconds) < FRAME_SECONDS, event
        assert abs(event.level - (TONE_DBM0 + 3.01)) < 1.0, event  # the pair: two tones at TONE_DBM0


@pytest.mark.parametrize("rate", RATES)
def test_the_start_event_comes_before_the_digit_ends_and_the_end_event_after(rate):
    detector = DtmfDetector(rate)
    pcm = ffmpeg_pcm([tone("5", 0.1, 0.5)], rate, 0.8)
    frame = 2 * round(rate * FRAME_SECONDS)
    seen = []
    for at in range(0, len(pcm), frame):
        seen += [(detector.position / rate, event) for event in detector.feed(pcm[at:at + frame])]
    (started_at, start), (ended_at, end) = seen
    assert not start.ended and end.ended and start.start == end.start
    assert started_at < 0.1 + 0.06  # known within 60 ms of the key press
    assert 0.6 < ended_at < 0.6 + 0.06  # and of its release
    assert abs(start.duration / rate - (started_at - 0.1)) < FRAME_SECONDS  # lasted so far


def test_events_do_not_depend_on_the_chunk_size():
    rate = 8000
    terms, length = sequence("159#", 0.06, 0.05)
    pcm = ffmpeg_pcm([*terms, white_noise(NOISE_DBM0)], rate, length)
    in_frames = detect(pcm, rate)
    assert digits(in_frames) == "159#"
    for chunk_seconds in (1 / rate, 0.0137, 10.0):  # sample by sample, odd sizes, all at once
        events = detect(pcm, rate, chunk_seconds)
        assert [(e.digit, e.start, e.duration, e.ended) for e in events] == [
            (e.digit, e.start, e.duration, e.ended) for e in in_frames]
        assert [e.level for e in events] == pytest.approx([e.level for e in in_frames])


@pytest.mark.parametrize("rate", [24000, 44100, 48000, 96000])
def test_the_other_rates_sinch_allows(rate):
    keys = "0123456789*#ABCD"
    terms, length = sequence(keys, 0.06, 0.05)
    assert digits(detect(ffmpeg_pcm([*terms, white_noise(NOISE_DBM0)], rate, length), rate)) == keys


def test_an_odd_byte_count_is_refused_by_name():
    with pytest.raises(ValueError, match="whole pairs of bytes"):
        DtmfDetector(8000).feed(b"\x00\x01\x02")


# ---- ITU-T Q.24 limits ----------------------------------------------------------------------------------


def detected_digits(rate: int, **tone_options) -> str:
    terms, length = sequence(DIGITS, 0.06, 0.06, **tone_options)
    return digits(detect(ffmpeg_pcm([*terms, white_noise(NOISE_DBM0)], rate, length), rate))


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize(("row_shift", "column_shift"), [(0.015, 0.015), (-0.015, -0.015), (0.015, -0.015),
                                                         (-0.015, 0.015)])
def test_frequencies_off_by_1_5_percent_are_accepted(rate, row_shift, column_shift):
    assert detected_digits(rate, row_shift=row_shift, column_shift=column_shift) == DIGITS


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize(("row_shift", "column_shift"), [(0.035, 0), (-0.035, 0), (0, 0.035), (0, -0.035)])
def test_a_frequency_off_by_3_5_percent_is_rejected(rate, row_shift, column_shift):
    assert detected_digits(rate, row_shift=row_shift, column_shift=column_shift) == ""


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("twist_db", [8.0, -4.0])  # Q.24: low group up to 8 dB louder, high group up to 4 dB
def test_twist_within_the_limits_is_accepted(rate, twist_db):
    assert detected_digits(rate, twist_db=twist_db) == DIGITS


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("twist_db", [11.0, -7.0])
def test_twist_beyond_the_limits_is_rejected(rate, twist_db):
    assert detected_digits(rate, twist_db=twist_db) == ""


@pytest.mark.parametrize("rate", RATES)
def test_40_ms_digits_are_accepted(rate):
    terms, length = sequence(DIGITS, 0.04, 0.06)
    events = detect(ffmpeg_pcm([*terms, white_noise(NOISE_DBM0)], rate, length), rate)
    assert digits(events) == DIGITS
    assert all(abs(event.duration / rate - 0.04) < FRAME_SECONDS for event in ended(events))


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("seconds", [0.023, 0.015])
def test_short_blips_are_rejected(rate, seconds):
    terms, length = sequence(DIGITS, seconds, 0.06)
    assert digits(detect(ffmpeg_pcm([*terms, white_noise(NOISE_DBM0)], rate, length), rate)) == ""


@pytest.mark.parametrize("rate", RATES)
def test_a_fast_sequence_with_40_ms_pauses(rate):
    keys = "1123581321#**0"  # repeated digits too: only the pause separates them
    terms, length = sequence(keys, 0.04, 0.04)
    assert digits(detect(ffmpeg_pcm([*terms, white_noise(NOISE_DBM0)], rate, length), rate)) == keys


@pytest.mark.parametrize("rate", RATES)
def test_a_10_ms_interruption_does_not_split_a_digit(rate):
    terms = [tone("7", 0.1, 0.06), tone("7", 0.17, 0.06)]
    events = detect(ffmpeg_pcm([*terms, white_noise(NOISE_DBM0)], rate, 0.4), rate)
    assert digits(events) == "7"
    assert abs(ended(events)[0].duration / rate - 0.13) < FRAME_SECONDS


@pytest.mark.parametrize("rate", RATES)
def test_the_weakest_level_q24_accepts_is_detected_and_the_strongest_it_rejects_is_not(rate):
    accepted = sequence(DIGITS, 0.06, 0.06, dbm0=-25.0)
    rejected = sequence(DIGITS, 0.06, 0.06, dbm0=-55.0, first=accepted[1])
    pcm = ffmpeg_pcm([*accepted[0], *rejected[0], white_noise(-42.0)], rate, rejected[1])
    assert digits(detect(pcm, rate)) == DIGITS


# ---- talk-off -------------------------------------------------------------------------------------------


SPEECH = (
    "Please enter your account number, followed by the pound key. One two three four five six seven eight nine "
    "zero, star and hash. Hello? Yes, I would like to speak to someone about my bill, please. Ooooh, weeeee, "
    "aaaah. Mmmmm. Eeeeeee! Ahhhh. The quick brown fox jumps over the lazy dog while the phone keeps ringing."
)
VOICES = [("en-us", 20), ("en-us+f3", 50), ("en-gb+m3", 70), ("en-us+f5", 99)]  # espeak-ng voice, pitch 0-99


@pytest.fixture(scope="module")
def speech_files(tmp_path_factory) -> list[str]:
    """The text in four voices, low to high pitch, as espeak-ng's WAV files (22.05 kHz)."""
    if ESPEAK is None:
        pytest.skip("espeak-ng not installed (scripts/test installs it)")
    folder = tmp_path_factory.mktemp("speech")
    files = []
    for voice, pitch in VOICES:
        files.append(str(folder / f"{voice}.wav"))
        subprocess.run([ESPEAK, "-v", voice, "-p", str(pitch), "-w", files[-1], SPEECH], check=True, timeout=30)
    return files


@pytest.mark.parametrize("rate", RATES)
def test_speech_gives_no_digits(rate, speech_files):
    inputs = [argument for file in speech_files for argument in ("-i", file)]
    speech = subprocess.run(
        [FFMPEG, "-v", "error", *inputs, "-filter_complex", f"concat=n={len(speech_files)}:v=0:a=1",
         "-ar", str(rate), "-f", "s16le", "-ac", "1", "-"], check=True, capture_output=True, timeout=30).stdout
    assert len(speech) > 2 * rate * 60  # over a minute of speech
    assert detect(speech, rate) == []


def note(midi: int) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def music_terms(seed: int) -> tuple[list[str], float]:
    """Chords of two to four notes (each with harmonics 1-6 at 1/k amplitude, as an instrument has), held for
    0.15-0.6 s, over pink-ish noise: F5 and F#6 (698 and 1480 Hz, as in digit 3) come up often."""
    rng = random.Random(seed)
    terms, at = [], 0.0
    for _ in range(40):
        held = rng.uniform(0.15, 0.6)
        notes = rng.sample(range(65, 92), rng.randint(2, 4))
        if rng.random() < 0.3:
            notes = [77, 90]  # F5 + F#6: the nearest notes to digit 3's tones
        partials = "+".join(f"{0.12 / k}*sin(2*PI*{k * note(n)}*t)" for n in notes for k in range(1, 7))
        terms.append(during(at, held, partials))
        at += held
    return terms, at


@pytest.mark.parametrize("rate", RATES)
def test_music_gives_no_digits(rate):
    terms, length = music_terms(seed=rate)
    assert detect(ffmpeg_pcm([*terms, white_noise(-30.0)], rate, length), rate) == []


def test_noise_alone_gives_no_digits():
    pcm = ffmpeg_pcm([white_noise(-10.0)], 8000, 5.0)
    assert detect(pcm, 8000) == []
    samples = np.frombuffer(pcm, "<i2")
    assert samples.std() > 1000  # loud noise, not silence
