"""Signed stream tokens: the only thing that can authenticate Sinch's websocket, whose upgrade carries no
custom headers (protocol notes §2.1). The ICE answer puts one in the stream URL; the worker checks it.

    token = base64url(claims JSON) "." base64url(HMAC-SHA256(token_key, claims JSON))
    claims = {"c": call id, "r": route, "s": sample rate, "x": expiry (unix seconds)[, "v": session]
              [, "i": instance id]}

A Voice API 2.0 stream leg has a call id of its own, which Sinch chooses when it dials the leg: its token names
the session of the call.incoming it answers instead ("c" empty), and stays single-use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

import msgspec

from gateway.core.errors import InputError

MAX_TOKEN_LENGTH = 2048


class Claims(msgspec.Struct, frozen=True, omit_defaults=True):
    """What a stream token says. Short keys on the wire keep the stream URL short, and tokens already issued
    verify (a claim at its default is left out, so a token without a session or an instance is spelled as
    before)."""

    call_id: str = msgspec.field(name="c")
    route: str = msgspec.field(name="r")
    rate: int = msgspec.field(name="s")  # sample rate, Hz
    expires: int = msgspec.field(name="x")  # unix seconds
    session: str = msgspec.field(name="v", default="")  # Voice API 2.0 session id; "" = none
    instance: str = msgspec.field(name="i", default="")  # the issuing gateway's instance_id; only it accepts it


class TokenError(InputError):
    """`status` is the HTTP status to decline the upgrade with: 401 missing/malformed, 403 forged/expired."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


_encode = msgspec.json.Encoder().encode
_decode_claims = msgspec.json.Decoder(Claims).decode


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def _mac(key: str, payload: bytes) -> bytes:
    return hmac.new(key.encode(), payload, hashlib.sha256).digest()


def issue(
    key: str, call_id: str, route: str, rate: int, expires: int, session: str = "", instance: str = "",
) -> str:
    payload = _encode(Claims(call_id=call_id, route=route, rate=rate, expires=expires, session=session,
                             instance=instance))
    return f"{_b64(payload)}.{_b64(_mac(key, payload))}"


def verify(
    key: str, token: str | None, route: str, now: float, previous_key: str = "", instance: str = ""
) -> Claims:
    """The token's claims if it is well-formed, signed with `key` (or, while a key rotation settles, with
    `previous_key`), unexpired, for this route and issued for this `instance` (instance_id; "" = tokens that name
    none); else TokenError with the status and reason."""
    if not token:
        raise TokenError(401, "missing_token")
    if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise TokenError(401, "malformed_token")
    payload_text, mac_text = token.split(".")
    try:
        payload, mac = _unb64(payload_text), _unb64(mac_text)
    except (binascii.Error, ValueError):
        raise TokenError(401, "malformed_token") from None
    if _b64(payload) != payload_text or _b64(mac) != mac_text:
        # One spelling per token: base64 tolerates padding and unused low bits, and a second spelling of a used
        # token would otherwise pass the replay guard as a new one.
        raise TokenError(401, "malformed_token")
    if not hmac.compare_digest(mac, _mac(key, payload)) and not (
            previous_key and hmac.compare_digest(mac, _mac(previous_key, payload))):
        raise TokenError(403, "forged_token")
    try:
        claims = _decode_claims(payload)
    except msgspec.DecodeError:
        raise TokenError(401, "malformed_token") from None
    if claims.expires < now:
        raise TokenError(403, "expired_token")
    if claims.route != route:
        raise TokenError(403, "token_for_another_route")
    if claims.instance != instance:
        raise TokenError(403, "token_for_another_instance")
    return claims


def digest(token: str) -> bytes:
    """What the replay guard remembers of a token."""
    return hashlib.sha256(token.encode()).digest()[:16]
