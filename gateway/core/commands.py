"""Sinch stream commands (protocol notes §2): parsing the connect command, encoding the server's replies.

Sources spell the connect fields differently (`CallId`, `callId`, `ApplicationId`, `applicationKey`,
`Headers`, `callHeaders`, ...), so keys are matched case-insensitively and every known spelling is accepted.
"""

from __future__ import annotations

import msgspec

from gateway.core.errors import InputError
from gateway.shared.config import SINCH_RATES


class CommandError(InputError):
    """A text message that is not a usable command."""


class _Header(msgspec.Struct):
    """One pair of the list form SVAML's callHeaders uses: {"key": ..., "value": ...}."""

    key: str
    value: str | None = ""


# Sinch documents the connect message's headers as an object; SVAML's callHeaders is a list of pairs: both are
# accepted (a tolerant reader: Sinch may send either). Voice API 2.0's callHeaders take an optional value, so a
# value may also be null.
Headers = dict[str, str | None] | list[_Header] | None


class _ConnectFields(msgspec.Struct):
    """The connect command with keys lower-cased; every spelling from the protocol notes is a field."""

    command: str
    callid: str | None = None
    applicationid: str | None = None
    applicationkey: str | None = None
    headers: Headers = None
    callheaders: Headers = None
    version: int | None = None
    codec: str | None = None
    samplerate: int | None = None


class Connect(msgspec.Struct, frozen=True):
    call_id: str
    application: str
    headers: dict[str, str]
    sample_rate: int | None  # None: the server must know it (stream URL `rate=`)
    codec: str
    version: int | None


class Other(msgspec.Struct, frozen=True):
    """A well-formed command the gateway has no use for (forward compatibility: counted, not fatal).
    `name` is one of KNOWN_COMMANDS or "other", so a peer cannot make the gateway keep names it invents."""

    name: str


# Commands Sinch or a future protocol version might plausibly send; any other name is counted as "other".
KNOWN_COMMANDS = ("dtmf", "mark", "start", "stop", "media", "clear", "heartbeat", "answer", "busy", "reject")
NOT_A_COMMAND = "not_a_command"  # counted like an ignored command: a text message after the answer that is none


_decode_json = msgspec.json.Decoder().decode

# Server -> Sinch replies (protocol notes §2.3, §2.5), encoded once.
ANSWER = b'{"command":"answer"}'
BUSY = b'{"command":"busy"}'
REJECT = b'{"command":"reject"}'
CLEAR = b'{"command":"clear"}'
HEARTBEAT = b'{"command":"heartbeat"}'

MAX_CALL_ID_LENGTH = 256


def parse_command(text: bytes | str) -> Connect | Other:
    """Parse one text message from Sinch; raise CommandError naming what is wrong."""
    try:
        raw = _decode_json(text)
    except msgspec.DecodeError as exc:
        raise CommandError("malformed_json", f"not JSON: {exc}") from None
    except RecursionError:  # msgspec's decoder stops at Python's recursion limit: no command nests that deep
        raise CommandError("malformed_json", "not JSON: nested too deeply") from None
    if not isinstance(raw, dict):
        raise CommandError("not_an_object", "a command must be a JSON object")
    lowered = {str(key).lower(): value for key, value in raw.items()}
    name = lowered.get("command")
    if not isinstance(name, str):
        raise CommandError("missing_command", "no \"command\" field")
    name = name.lower()
    if name != "connect":
        return Other(name if name in KNOWN_COMMANDS else "other")
    lowered["command"] = name
    try:
        fields = msgspec.convert(lowered, _ConnectFields, strict=False)
    except msgspec.ValidationError as exc:
        raise CommandError("bad_connect", f"connect: {exc}") from None
    return _connect_from(fields)


def _connect_from(fields: _ConnectFields) -> Connect:
    if not fields.callid:
        raise CommandError("bad_connect", "connect: no call id (CallId/callId)")
    if len(fields.callid) > MAX_CALL_ID_LENGTH:
        raise CommandError("bad_connect", f"connect: call id longer than {MAX_CALL_ID_LENGTH}")
    if fields.samplerate is not None and fields.samplerate not in SINCH_RATES:
        raise CommandError("bad_connect", f"connect: sampleRate {fields.samplerate} not one of {SINCH_RATES}")
    codec = (fields.codec or "PCM").upper()
    if codec != "PCM":
        raise CommandError("bad_connect", f"connect: codec {fields.codec!r} unsupported (PCM only)")
    return Connect(
        call_id=fields.callid,
        application=fields.applicationkey or fields.applicationid or "",
        headers=_as_dict(fields.callheaders or fields.headers),
        sample_rate=fields.samplerate,
        codec=codec,
        version=fields.version,
    )


def _as_dict(headers: Headers) -> dict[str, str]:
    if isinstance(headers, list):
        return {header.key: header.value or "" for header in headers}
    return {key: value or "" for key, value in (headers or {}).items()}
