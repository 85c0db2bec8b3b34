"""A route's hold sound: read and checked at config load (gateway.shared.hold_sound), errors naming the route;
converted to a call's rate in whole 20 ms frames (gateway.core.hold). The return path's looping is in
tests/test_return_path.py, a failover with it end to end in tests/e2e/test_pools.py."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from gateway.cli import masked
from gateway.core.hold import hold_frames
from gateway.shared.config import ConfigError, load_config, parse_route


def write_wav(path, samples, rate: int = 16000, channels: int = 1, width: int = 2) -> str:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(np.asarray(samples, "<i2").tobytes() if width == 2 else bytes(samples))
    return str(path)


def not_audio(path) -> str:
    path.write_text("not audio")
    return str(path)


def test_the_sound_is_read_at_load_and_shown_by_its_path(tmp_path):
    path = write_wav(tmp_path / "hold.wav", [7, -7] * 400)
    route = parse_route(f"asr=rtp://10.0.0.5:5004?hold_sound={path}")
    assert (route.hold_sound.path, route.hold_sound.rate) == (path, 16000)
    assert route.hold_sound.pcm == np.asarray([7, -7] * 400, "<i2").tobytes()
    assert route.url() == f"rtp://10.0.0.5:5004?codec=L16&hold_sound={path}"
    assert parse_route("asr=rtp://10.0.0.5:5004").hold_sound is None
    config = load_config(env={}, overrides={"routes": [f"asr=rtp://10.0.0.5:5004?hold_sound={path}"]})
    assert masked(config)["routes"]["asr"]["hold_sound"] == path  # `gateway check`: not its samples


@pytest.mark.parametrize(("make", "message"), [
    (lambda tmp: str(tmp / "missing.wav"), r"No such file"),
    (lambda tmp: not_audio(tmp / "text.wav"), r"RIFF"),
    (lambda tmp: write_wav(tmp / "stereo.wav", [0] * 320, channels=2), r"expected 16-bit mono PCM, got 16-bit with 2"),
    (lambda tmp: write_wav(tmp / "8bit.wav", [128] * 320, width=1), r"expected 16-bit mono PCM, got 8-bit"),
    (lambda tmp: write_wav(tmp / "slow.wav", [0] * 320, rate=4000), r"sample rate 4000 Hz"),
    (lambda tmp: write_wav(tmp / "empty.wav", []), r"0.0 s of audio"),
    (lambda tmp: write_wav(tmp / "long.wav", np.zeros(8000 * 11), rate=8000), r"11.0 s of audio"),
])
def test_a_bad_file_is_a_config_error_naming_the_route(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(ConfigError, match=rf"routes\.asr: hold_sound: {path}: .*{message}"):
        load_config(env={}, overrides={"routes": [f"asr=rtp://127.0.0.1:5004?hold_sound={path}"]})


def test_at_the_files_rate_the_samples_are_kept_and_the_last_frame_padded(tmp_path):
    route = parse_route(f"asr=rtp://10.0.0.5:5004?hold_sound={write_wav(tmp_path / 'h.wav', [5] * 500)}")
    frames = hold_frames(route.hold_sound, 16000)
    assert len(frames) == 2 * 640  # 500 samples: two 20 ms frames of 320
    assert np.frombuffer(frames, "<i2").tolist() == [5] * 500 + [0] * 140


def test_at_another_rate_it_is_resampled_to_whole_frames_of_that_rate(tmp_path):
    tone = np.round(8000 * np.sin(2 * np.pi * 400 * np.arange(8000) / 8000))  # 1 s of 400 Hz at 8 kHz
    route = parse_route(f"asr=rtp://10.0.0.5:5004?hold_sound={write_wav(tmp_path / 'h.wav', tone, rate=8000)}")
    frames = np.frombuffer(hold_frames(route.hold_sound, 48000), "<i2")
    assert len(frames) == 48000  # 1 s at 48 kHz: 50 frames
    spectrum = np.abs(np.fft.rfft(frames[4800:]))  # past the filter's start from silence
    assert np.argmax(spectrum) * 48000 / len(frames[4800:]) == pytest.approx(400, abs=2)
    assert hold_frames(None, 48000) == b""  # no sound: the return path sends silence
