"""Tests for gateway.codec: G.711 tables, the streaming resampler and the stream encoder/decoder."""

import math

import numpy as np
import pytest

from gateway.core.codec import (
    DownstreamDecoder,
    StreamResampler,
    UpstreamEncoder,
    alaw_decode,
    alaw_encode,
    swap16,
    ulaw_decode,
    ulaw_encode,
)

ALL_INT16 = np.arange(-32768, 32768).astype(np.int16)
ALL_CODES = np.arange(256, dtype=np.uint8)
# G.711 tests use the ITU-T O.6 1020 Hz reference tone rather than exactly 1 kHz: a submultiple of 8 kHz
# only ever visits 8 sample values, which measures those few codes instead of the quantiser (µ-law round
# trip of a -6 dBFS 1000 Hz tone: 33.9 dB).
TONE = 1020


# --- Independent per-sample reference: a line-by-line port of the ITU-T G.191 STL g711.c ------------
def ref_ulaw_compress(x: int) -> int:
    absno = ((~x) >> 2) + 33 if x < 0 else (x >> 2) + 33
    absno = min(absno, 0x1FFF)
    i = absno >> 6
    segno = 1
    while i != 0:
        segno += 1
        i >>= 1
    high_nibble = 0x0008 - segno
    low_nibble = 0x000F - ((absno >> segno) & 0x000F)
    code = (high_nibble << 4) | low_nibble
    return code | 0x0080 if x >= 0 else code


def ref_ulaw_expand(code: int) -> int:
    sign = -1 if code < 0x0080 else 1
    mantissa = ~code
    exponent = (mantissa >> 4) & 0x0007
    segment = exponent + 1
    mantissa &= 0x000F
    step = 4 << segment
    return sign * ((0x0080 << exponent) + step * mantissa + step // 2 - 4 * 33)


def ref_alaw_compress(x: int) -> int:
    ix = (~x) >> 4 if x < 0 else x >> 4
    if ix > 15:
        iexp = 1
        while ix > 16 + 15:
            ix >>= 1
            iexp += 1
        ix -= 16
        ix += iexp << 4
    if x >= 0:
        ix |= 0x0080
    return ix ^ 0x0055


def ref_alaw_expand(code: int) -> int:
    ix = (code ^ 0x0055) & 0x007F
    iexp = ix >> 4
    mant = ix & 0x000F
    if iexp > 0:
        mant += 16
    mant = (mant << 4) + 0x0008
    if iexp > 1:
        mant <<= iexp - 1
    return mant if code > 127 else -mant


# --- Helpers -------------------------------------------------------------------------------------
def sine(freq: float, rate: int, seconds: float = 1.0, dbfs: float = -6.0) -> np.ndarray:
    amp = 32768 * 10 ** (dbfs / 20)
    return np.rint(amp * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)).astype(np.int16)


def snr_db(signal: np.ndarray, reference: np.ndarray) -> float:
    ref = reference.astype(np.float64)
    noise = signal.astype(np.float64) - ref
    return 10 * math.log10(np.sum(ref**2) / np.sum(noise**2))


def in_chunks(process, samples: np.ndarray, size: int) -> np.ndarray:
    return np.concatenate([process(samples[i : i + size]) for i in range(0, len(samples), size)])


def ratio(in_rate: int, out_rate: int) -> tuple[int, int]:
    g = math.gcd(in_rate, out_rate)
    return out_rate // g, in_rate // g


# --- G.711 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("encode", "reference"), [(ulaw_encode, ref_ulaw_compress), (alaw_encode, ref_alaw_compress)])
def test_g711_encode_is_bit_exact_for_every_int16(encode, reference):
    expected = np.array([reference(int(x)) for x in ALL_INT16], dtype=np.uint8)
    np.testing.assert_array_equal(encode(ALL_INT16), expected)


@pytest.mark.parametrize(("decode", "reference"), [(ulaw_decode, ref_ulaw_expand), (alaw_decode, ref_alaw_expand)])
def test_g711_decode_is_bit_exact_for_every_code(decode, reference):
    expected = np.array([reference(int(c)) for c in ALL_CODES], dtype=np.int16)
    np.testing.assert_array_equal(decode(ALL_CODES), expected)
    np.testing.assert_array_equal(decode(ALL_CODES.tobytes()), expected)


@pytest.mark.parametrize(
    ("decode", "reference", "code", "value"),
    [
        (ulaw_decode, ref_ulaw_expand, 0x00, -32124),
        (ulaw_decode, ref_ulaw_expand, 0x80, 32124),
        (ulaw_decode, ref_ulaw_expand, 0xFF, 0),
        (ulaw_decode, ref_ulaw_expand, 0x7F, 0),
        (alaw_decode, ref_alaw_expand, 0xD5, 8),
        (alaw_decode, ref_alaw_expand, 0x55, -8),
        (alaw_decode, ref_alaw_expand, 0xAA, 32256),
        (alaw_decode, ref_alaw_expand, 0x2A, -32256),
    ],
)
def test_g711_decode_spot_values(decode, reference, code, value):
    assert reference(code) == value
    assert decode(bytes([code]))[0] == value


@pytest.mark.parametrize(
    ("encode", "reference", "sample", "code"),
    [
        (ulaw_encode, ref_ulaw_compress, 0, 0xFF),
        (ulaw_encode, ref_ulaw_compress, -1, 0x7F),  # 1's complement: -1 is "negative zero"
        (ulaw_encode, ref_ulaw_compress, 32767, 0x80),  # clipped at 32635
        (ulaw_encode, ref_ulaw_compress, -32768, 0x00),
        (alaw_encode, ref_alaw_compress, 0, 0xD5),
        (alaw_encode, ref_alaw_compress, -1, 0x55),
        (alaw_encode, ref_alaw_compress, 32767, 0xAA),
        (alaw_encode, ref_alaw_compress, -32768, 0x2A),
    ],
)
def test_g711_encode_spot_values(encode, reference, sample, code):
    assert reference(sample) == code
    assert encode(np.array([sample], np.int16))[0] == code


# Measured: µ-law 36.6 dB, A-law 37.2 dB.
@pytest.mark.parametrize(("encode", "decode"), [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)])
def test_g711_round_trip_snr_above_35_db(encode, decode):
    x = sine(TONE, 8000)
    snr = snr_db(decode(encode(x)), x)
    assert snr > 35, f"{snr:.1f} dB"


# --- L16 -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("buffer_type", [bytes, bytearray, memoryview])
def test_l16_encode_is_big_endian(buffer_type):
    encoder = UpstreamEncoder("L16", 16000, 16000)
    assert encoder.bytes_per_sample == 2
    assert encoder.encode(buffer_type(b"\x34\x12\xff\x7f")) == b"\x12\x34\x7f\xff"


def test_l16_decode_inverts_encode_and_ignores_odd_byte():
    decoder = DownstreamDecoder("L16", 16000, 16000)
    assert decoder.bytes_per_sample == 2
    assert decoder.decode(b"\x12\x34\x7f\xff\x01") == b"\x34\x12\xff\x7f"
    assert decoder.decode(memoryview(b"\x12\x34")) == b"\x34\x12"


def test_l16_resampled_encode_is_big_endian():
    pcm = sine(1000, 16000, 0.02)
    wire = UpstreamEncoder("L16", 16000, 48000).encode(pcm.astype("<i2").tobytes())
    np.testing.assert_array_equal(np.frombuffer(wire, ">i2"), StreamResampler(16000, 48000).process(pcm))


def test_unknown_codec_is_rejected():
    with pytest.raises(ValueError, match="G722"):
        UpstreamEncoder("G722", 16000, 16000)
    with pytest.raises(ValueError, match="G722"):
        DownstreamDecoder("G722", 16000, 16000)


# --- Resampler -----------------------------------------------------------------------------------
# SNR against the ideal sine at the output rate (delay-compensated), 20 ms chunks; ids give the
# figure measured when the test was written.
@pytest.mark.parametrize(
    ("in_rate", "out_rate", "freq"),
    [
        pytest.param(16000, 8000, 1000, id="16k-8k-1kHz-96dB"),
        pytest.param(16000, 8000, 3000, id="16k-8k-3kHz-67dB"),
        pytest.param(8000, 16000, 1000, id="8k-16k-1kHz-84dB"),
        pytest.param(48000, 8000, 1000, id="48k-8k-1kHz-88dB"),
        pytest.param(44100, 16000, 1000, id="44.1k-16k-1kHz-90dB"),
        pytest.param(8000, 48000, 1000, id="8k-48k-1kHz-86dB"),
        pytest.param(44100, 8000, 1000, id="44.1k-8k-1kHz-89dB"),
        pytest.param(8000, 44100, 1000, id="8k-44.1k-1kHz-88dB"),
    ],
)
def test_resampler_snr_above_40_db(in_rate, out_rate, freq):
    resampler = StreamResampler(in_rate, out_rate)
    out = in_chunks(resampler.process, sine(freq, in_rate), in_rate // 50)
    t = (np.arange(len(out)) - resampler.delay) / out_rate
    ideal = 32768 * 10 ** (-6 / 20) * np.sin(2 * np.pi * freq * t)
    settled = out_rate // 100  # skip the first 10 ms (filter starting from silence)
    snr = snr_db(out[settled:], ideal[settled:])
    assert snr > 40, f"{snr:.1f} dB"


def test_resampler_group_delay_is_small():
    for in_rate, out_rate in [(8000, 16000), (16000, 8000), (44100, 8000), (8000, 48000)]:
        assert StreamResampler(in_rate, out_rate).delay / out_rate < 0.0025


def test_resampler_rejects_aliases_by_more_than_30_db():  # measured 81 dB
    x = sine(6000, 16000)
    out = in_chunks(StreamResampler(16000, 8000).process, x, 320)[80:]
    attenuation = 10 * math.log10(np.mean(x.astype(float) ** 2) / np.mean(out.astype(float) ** 2))
    assert attenuation > 30, f"{attenuation:.1f} dB"


@pytest.mark.parametrize(
    ("in_rate", "out_rate"),
    [(16000, 8000), (8000, 16000), (44100, 8000), (8000, 44100), (48000, 44100), (96000, 8000), (24000, 16000)],
)
def test_resampler_output_does_not_depend_on_chunking(in_rate, out_rate):
    rng = np.random.default_rng(in_rate + out_rate)
    x = rng.integers(-20000, 20000, 20000).astype(np.int16)
    whole = StreamResampler(in_rate, out_rate).process(x)
    up, down = ratio(in_rate, out_rate)
    resampler, pieces, start = StreamResampler(in_rate, out_rate), [], 0
    while start < len(x):
        size = int(rng.choice([0, 1, 2, 3, 7, 160, 441, 882, 1000, 4000]))
        piece = resampler.process(x[start : start + size])
        assert abs(len(piece) - len(x[start : start + size]) * up / down) < 1
        pieces.append(piece)
        start += size
    chunked = np.concatenate(pieces)
    assert len(chunked) == len(whole) == -(-len(x) * up // down)
    assert np.abs(chunked.astype(int) - whole).max() <= 1  # float summation order may differ


@pytest.mark.parametrize(
    ("in_rate", "out_rate", "chunk"), [(44100, 16000, 882), (44100, 48000, 7), (16000, 44100, 333), (8000, 96000, 1)]
)
def test_resampler_long_run_count_is_exact(in_rate, out_rate, chunk):
    up, down = ratio(in_rate, out_rate)
    resampler, silence, total = StreamResampler(in_rate, out_rate), np.zeros(chunk, np.int16), 0
    for n in range(1, 3001):
        got = len(resampler.process(silence))
        assert abs(got - chunk * up / down) < 1
        total += got
        assert total == -(-n * chunk * up // down)


# --- Encoder / decoder ---------------------------------------------------------------------------
def test_encoder_chunking_matches_one_piece():
    pcm = sine(1000, 44100, 0.5).astype("<i2").tobytes()
    whole = UpstreamEncoder("L16", 44100, 16000).encode(pcm)
    encoder, rng, pieces, start = UpstreamEncoder("L16", 44100, 16000), np.random.default_rng(7), [], 0
    while start < len(pcm):
        size = 2 * int(rng.integers(0, 1000))
        pieces.append(encoder.encode(pcm[start : start + size]))
        start += size
    chunked = np.frombuffer(b"".join(pieces), ">i2")
    assert len(chunked) == len(whole) // 2
    assert np.abs(chunked.astype(int) - np.frombuffer(whole, ">i2")).max() <= 1


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_g711_stream_round_trip_at_16_khz(codec):  # measured 37.0 dB (PCMU), 37.7 dB (PCMA)
    encoder, decoder = UpstreamEncoder(codec, 16000, 8000), DownstreamDecoder(codec, 16000, 8000)
    assert encoder.bytes_per_sample == decoder.bytes_per_sample == 1
    pcm = sine(TONE, 16000).astype("<i2").tobytes()
    out = b"".join(decoder.decode(encoder.encode(pcm[i : i + 640])) for i in range(0, len(pcm), 640))
    out = np.frombuffer(out, "<i2")
    assert len(out) == 16000
    delay = 2 * StreamResampler(16000, 8000).delay + StreamResampler(8000, 16000).delay
    ideal = 32768 * 10 ** (-6 / 20) * np.sin(2 * np.pi * TONE * (np.arange(len(out)) - delay) / 16000)
    snr = snr_db(out[160:], ideal[160:])
    assert snr > 30, f"{snr:.1f} dB"


def test_g711_encode_without_resampling_is_the_table():
    pcm = sine(440, 8000, 0.02)
    assert UpstreamEncoder("PCMA", 8000, 8000).encode(pcm.astype("<i2").tobytes()) == alaw_encode(pcm).tobytes()


# --- Concealment ---------------------------------------------------------------------------------
def faded(packet: np.ndarray) -> np.ndarray:
    """What conceal() should synthesise at the wire rate for a gap of one packet."""
    return (packet * (1 - np.arange(len(packet)) / len(packet))).astype(np.int16)


@pytest.mark.parametrize("call_rate", [8000, 16000, 44100, 48000])
def test_conceal_returns_the_gap_duration_at_the_call_rate(call_rate):
    decoder = DownstreamDecoder("PCMU", call_rate, 8000)
    up, down = ratio(8000, call_rate)
    wire_total = 160
    decoded = len(decoder.decode(ulaw_encode(sine(1000, 8000, 0.02)).tobytes())) // 2
    for gap in [160, 80, 1, 333, 0, 1000]:
        pcm = decoder.conceal(gap)
        wire_total += gap
        assert abs(len(pcm) // 2 - gap * up / down) < 1
        decoded += len(pcm) // 2
    assert decoded == -(-wire_total * up // down)


def test_conceal_fades_out_then_goes_silent():
    decoder = DownstreamDecoder("PCMU", 16000, 8000)
    decoder.decode(ulaw_encode(sine(1000, 8000, 0.02)).tobytes())
    gap = np.frombuffer(decoder.conceal(3 * 160), "<i2").astype(float)
    assert len(gap) == 3 * 320
    energy = [np.sum(quarter**2) for quarter in np.split(gap[:320], 4)]
    assert energy == sorted(energy, reverse=True) and energy[-1] < energy[0] / 10
    # One packet, plus the whole filter span (twice its group delay) for the output to settle to zero.
    tail = 320 + math.ceil(2 * StreamResampler(8000, 16000).delay) + 1
    assert not gap[tail:].any()


def test_conceal_before_any_packet_is_silence():
    assert DownstreamDecoder("PCMA", 16000, 8000).conceal(160) == bytes(640)
    assert DownstreamDecoder("L16", 8000, 8000).conceal(160) == bytes(320)


def test_conceal_keeps_the_stream_continuous():
    packets = [ulaw_encode(sine(f, 8000, 0.02)) for f in (300, 700, 1100)]
    decoder = DownstreamDecoder("PCMU", 16000, 8000)
    out = [
        decoder.decode(packets[0].tobytes()),
        decoder.decode(packets[1].tobytes()),
        decoder.conceal(100),  # consecutive calls continue one fade
        decoder.conceal(60),
        decoder.decode(packets[2].tobytes()),
        decoder.conceal(500),
    ]
    wire = [ulaw_decode(p) for p in packets]
    expected_wire = np.concatenate([wire[0], wire[1], faded(wire[1]), wire[2], faded(wire[2]), np.zeros(340)])
    expected = StreamResampler(8000, 16000).process(expected_wire.astype(np.int16))
    got = np.frombuffer(b"".join(out), "<i2")
    assert len(got) == len(expected)
    assert np.abs(got.astype(int) - expected).max() <= 1


def test_conceal_without_resampling_is_the_faded_packet():
    packet = sine(1000, 8000, 0.02)
    decoder = DownstreamDecoder("L16", 8000, 8000)
    decoder.decode(packet.astype(">i2").tobytes())
    gap = np.frombuffer(decoder.conceal(200), "<i2")
    np.testing.assert_array_equal(gap, np.concatenate([faded(packet), np.zeros(40, np.int16)]))


def test_swap16_swaps_every_sample_and_leaves_an_odd_byte_out():
    """The L16 byte swap the compiled plane does in C and the Python plane with array (same function)."""
    data = bytes(range(256)) * 8 + b"\x7f"
    expected = np.frombuffer(data[:-1], "<i2").astype(">i2").tobytes()
    for kind in (bytes, bytearray, memoryview):
        assert swap16(kind(data)) == expected
    assert swap16(b"") == b""
