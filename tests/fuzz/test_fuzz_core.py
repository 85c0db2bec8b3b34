"""The sans-IO parsers under hostile input: only their documented errors ever come out.

Command parser -> CommandError; RTP/RTCP parser -> RtpError/RtcpError; stream tokens -> TokenError; callback
signatures -> SignatureError. Anything else (a RecursionError, a TypeError, an IndexError) fails the test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from gateway.core import signing, tokens
from gateway.core.commands import MAX_CALL_ID_LENGTH, CommandError, Connect, Other, parse_command
from gateway.core.rtp import RtcpError, RtpError, app_messages, bye_sources, parse_rtcp, parse_rtp
from gateway.shared.config import SINCH_RATES
from tests.fuzz.strategies import (
    any_text,
    batch,
    budget,
    feed,
    json_bytes,
    json_values,
    mostly,
    nested,
    seeds,
    with_mutations,
)

# ---- the command parser (websocket text messages) -------------------------------------------------------

COMMAND_KEYS = st.sampled_from(["command", "Command", "callId", "CallId", "callid", "applicationKey", "ApplicationId",
                                "headers", "Headers", "callHeaders", "version", "codec", "sampleRate", "samplerate"])
command_json = json_values(COMMAND_KEYS)
connects = st.fixed_dictionaries(
    {"command": st.sampled_from(["connect", "Connect", "CONNECT", "dtmf", "clear", "nope"]) | command_json},
    optional={"callId": st.text(max_size=300) | command_json, "sampleRate": st.sampled_from(SINCH_RATES) | command_json,
              "callHeaders": st.dictionaries(st.text(max_size=5), st.text(max_size=5)) | command_json,
              "codec": st.sampled_from(["PCM", "pcm", "OPUS"]) | command_json, "version": command_json,
              "Headers": command_json, "applicationKey": command_json},
)
command_texts = st.builds(json_bytes, connects | command_json, st.booleans())
command_messages = mostly(command_texts, st.binary(max_size=80) | nested())


def check_command(message: bytes | str) -> None:
    try:
        command = parse_command(message)
    except CommandError as exc:
        assert exc.reason in ("malformed_json", "not_an_object", "missing_command", "bad_connect")
        return
    assert isinstance(command, Connect | Other)
    if isinstance(command, Connect):
        assert 0 < len(command.call_id) <= MAX_CALL_ID_LENGTH
        assert command.sample_rate is None or command.sample_rate in SINCH_RATES


@budget(60)
@given(batch(command_messages, 10), batch(command_texts, 2), seeds)
def test_the_command_parser_raises_only_command_errors(messages, texts, seed):
    feed("commands", [*with_mutations(messages, seed, 60), *(text.decode("utf-8", "replace") for text in texts)],
         check_command)


# ---- RTP and RTCP (datagrams from anyone who can reach an RTP port) -------------------------------------

@st.composite
def rtp_like(draw: st.DrawFn) -> bytes:
    """Version 2 headers with every flag and count, CSRCs, extensions and padding that may or may not fit."""
    flags = draw(st.integers(0, 63))  # padding, extension, CSRC count
    header = struct.pack("!BBHII", 0x80 | flags, draw(st.integers(0, 255)), draw(st.integers(0, 0xFFFF)),
                         draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1)))
    csrcs = draw(st.binary(max_size=4 * 15))
    extension = b""
    if flags & 0x10:
        extension = struct.pack("!HH", 0xBEDE, draw(st.integers(0, 0xFFFF))) + draw(st.binary(max_size=32))
    payload = draw(st.binary(max_size=64))
    padding = bytes([draw(st.integers(0, 255))]) if flags & 0x20 and draw(st.booleans()) else b""
    return header + csrcs + extension + payload + padding


@st.composite
def rtcp_like(draw: st.DrawFn) -> bytes:
    """Compound RTCP (RFC 3550 §6.1): packets of any type whose length fields may lie, SDES items included."""
    packets = []
    for _ in range(draw(st.integers(1, 4))):
        packet_type = draw(st.sampled_from([200, 201, 202, 203, 204]) | st.integers(0, 255))
        if packet_type == 202:
            items = b"".join(bytes([draw(st.integers(0, 8)), len(text)]) + text
                             for text in draw(st.lists(st.binary(max_size=12), max_size=3)))
            body = struct.pack("!I", draw(st.integers(0, 2**32 - 1))) + items + draw(st.binary(max_size=4))
        else:
            body = draw(st.binary(max_size=40))
        body += bytes(-len(body) % 4) if draw(st.booleans()) else b""
        words = draw(st.just(len(body) // 4) | st.integers(0, 0xFFFF))
        first = draw(st.just(0x80) | st.integers(0, 255)) | draw(st.integers(0, 31))
        packets.append(struct.pack("!BBH", first, packet_type, words) + body)
    return b"".join(packets)


def check_rtp(datagram: bytes) -> None:
    try:
        packet = parse_rtp(datagram)
    except RtpError:
        return
    assert len(packet.payload) <= len(datagram) - 12


def check_rtcp(datagram: bytes) -> None:
    try:
        packets = parse_rtcp(datagram)
    except RtcpError:
        return
    sources = bye_sources(packets)
    assert sources is None or all(0 <= ssrc < 2**32 for ssrc in sources)
    assert all(len(name) == 4 and 0 <= subtype < 32 for name, subtype, _ in app_messages(packets))


@budget(100)
@given(batch(rtp_like() | st.binary(max_size=80), 10), seeds)
def test_the_rtp_parser_raises_only_rtp_errors(datagrams, seed):
    feed("rtp", with_mutations(datagrams, seed, 30), check_rtp)


@budget(100)
@given(batch(rtcp_like() | st.binary(max_size=80), 10), seeds)
def test_the_rtcp_parser_raises_only_rtcp_errors(datagrams, seed):
    feed("rtcp", with_mutations(datagrams, seed, 20), check_rtcp)


# ---- stream tokens (the query of Sinch's upgrade request) ------------------------------------------------

TOKEN_KEY = "a-stream-token-key-of-32-chars!!"
PREVIOUS_KEY = "the-previous-token-key-16+"


def _b64(data: bytes, padded: bool) -> str:
    text = base64.urlsafe_b64encode(data).decode()
    return text if padded else text.rstrip("=")


@st.composite
def signed_payloads(draw: st.DrawFn) -> str:
    """Tokens whose MAC is right (with the key, the previous key or another) over any payload: the claims
    decoder is reached only past the MAC."""
    claims = st.fixed_dictionaries({}, optional={name: st.integers() | st.text(max_size=8) | json_values(st.just("c"))
                                                 for name in "crsx"})
    payload = draw(st.builds(json_bytes, claims, st.booleans()) | st.binary(max_size=40))
    key = draw(st.sampled_from([TOKEN_KEY, PREVIOUS_KEY, "another-key-nobody-has"]))
    mac = hmac.new(key.encode(), payload, hashlib.sha256).digest()
    padded = draw(st.booleans())
    return f"{_b64(payload, padded)}.{_b64(mac, padded)}"


token_texts = st.one_of(
    signed_payloads(), any_text, st.builds(lambda a, b: f"{a}.{b}", any_text, any_text),
    st.builds(tokens.issue, st.sampled_from([TOKEN_KEY, PREVIOUS_KEY]), st.text(max_size=20),
              st.sampled_from(["asr", "echo"]), st.integers(-(2**40), 2**40), st.integers(0, 2**35)),
)


@budget(50)
@given(batch(token_texts, 10), st.sampled_from(["asr", "echo"]), st.floats(0, 2**35), seeds)
def test_stream_tokens_raise_only_token_errors(texts, route, now, seed):
    def check(token: str) -> None:
        try:
            claims = tokens.verify(TOKEN_KEY, token, route, now, PREVIOUS_KEY)
        except tokens.TokenError as exc:
            assert exc.status in (401, 403)
            return
        assert (claims.route, claims.expires >= now) == (route, True)
        assert len(tokens.digest(token)) == 16

    # the worker reads the query as latin-1: any byte is a character
    raw = [text.encode("utf-8", "surrogatepass") for text in texts]
    feed("tokens", [token.decode("latin-1") for token in with_mutations(raw, seed, 20)], check)


# ---- callback signatures (headers of a request to the callback port) ------------------------------------

APP_KEY = "669E367E-6BBA-48AB-AF15-266871C28135"
SECRET = "BeIukql3pTKJ8RGL5zo0DA=="
NOW = datetime(2026, 1, 1, tzinfo=UTC)

offsets = st.integers(-24 * 60 + 1, 24 * 60 - 1).map(lambda minutes: timezone(timedelta(minutes=minutes)))
timestamps = st.one_of(
    st.builds(lambda seconds: signing.utc_timestamp(NOW + timedelta(seconds=seconds)), st.integers(-400, 400)),
    st.builds(lambda moment, tz: moment.replace(tzinfo=tz).isoformat(), st.datetimes(), offsets | st.none()),
    any_text, st.none(),
)


@st.composite
def signed_requests(draw: st.DrawFn) -> tuple[str | None, str, bytes, str, str | None, str]:
    method = draw(st.sampled_from(["POST", "post", "GET"]) | any_text)
    body = draw(st.binary(max_size=60))
    content_type = draw(st.sampled_from(["application/json", ""]) | any_text)
    timestamp = draw(timestamps)
    path = draw(st.just("/sinch/callback") | any_text)
    key = draw(st.just(APP_KEY) | any_text)
    try:
        mac = signing.signature(SECRET, method, body, content_type, timestamp or "", path)
    except UnicodeEncodeError:  # what a peer can send, Sinch cannot have signed
        mac = draw(any_text)
    header = draw(st.one_of(
        st.just(f"Application {key}:{mac}"), st.builds(lambda k, m: f"Application {k}:{m}", any_text, any_text),
        any_text, st.none(),
    ))
    return header, method, body, content_type, timestamp, path


MUTATIONS = 20


@budget(50)
@given(batch(signed_requests(), 10), seeds)
def test_signature_checks_raise_only_signature_errors(requests, seed):
    def check(request: tuple) -> None:
        header, method, body, content_type, timestamp, path = request
        try:
            stamped = signing.verify(header, [signing.Signer(signing.APPLICATION, APP_KEY, SECRET)], method, body,
                                     content_type, timestamp, path, NOW, 300)
        except signing.SignatureError as exc:
            assert exc.reason in ("unsigned", "malformed", "stale", "wrong_key", "forged")
            return
        assert abs((NOW - stamped).total_seconds()) <= 300

    # each request, then with its Authorization header's bytes mutated (aiohttp: undecodable bytes as surrogates)
    headers = [(header or "").encode("utf-8", "surrogatepass") for header, *_ in requests]
    mutants = iter(with_mutations(headers, seed, MUTATIONS))
    cases = [(next(mutants).decode("utf-8", "surrogateescape"), *request[1:])
             for request in requests for _ in range(MUTATIONS + 1)]
    feed("signatures", cases, check)
