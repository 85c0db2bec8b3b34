"""Sinch's request signing, used both ways: to verify callbacks from Sinch and to sign our REST calls.

    Authorization: Application <applicationKey>:<signature>     Voice API 1: callbacks and REST requests
    Authorization: service <serviceId>:<signature>              Voice API 2.0: webhooks of a service
    signature    = Base64(HMAC-SHA256(Base64Decode(secret), UTF8(stringToSign)))
    stringToSign = METHOD \\n contentMD5 \\n content-type \\n "x-timestamp:" x-timestamp \\n path
    contentMD5   = Base64(MD5(raw body)), or "" when there is no body

Both schemes sign alike; each has its own key and secret (the application's, the service's).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple

from gateway.core.errors import InputError

APPLICATION = "Application"
SERVICE = "service"
KEY_NAMES = {APPLICATION: "application key", SERVICE: "service id"}


class Signer(NamedTuple):
    """Whoever signs with one scheme: its key (application key, service id) and base64 secret."""

    scheme: str
    key: str
    secret_b64: str


class SignatureError(InputError):
    """A request whose signature does not check out."""


def content_md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode() if body else ""


def string_to_sign(method: str, body: bytes, content_type: str, timestamp: str, path: str) -> str:
    return "\n".join((method.upper(), content_md5(body), content_type, f"x-timestamp:{timestamp}", path))


def signature(secret_b64: str, method: str, body: bytes, content_type: str, timestamp: str, path: str) -> str:
    key = base64.b64decode(secret_b64)
    message = string_to_sign(method, body, content_type, timestamp, path).encode()
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def authorization(signer: Signer, method: str, body: bytes, content_type: str, timestamp: str, path: str) -> str:
    return f"{signer.scheme} {signer.key}:{signature(signer.secret_b64, method, body, content_type, timestamp, path)}"


def utc_timestamp(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def verify(
    header: str | None, signers: Sequence[Signer], method: str, body: bytes, content_type: str,
    timestamp: str | None, path: str, now: datetime, max_skew: float,
) -> datetime:
    """The request's x-timestamp, once it is signed by one of `signers` (the one of its scheme) within the skew
    limit; else SignatureError. Header values may hold any text (aiohttp keeps bytes that are not UTF-8 as
    surrogates)."""
    if not header:
        raise SignatureError("unsigned", "no Authorization header")
    scheme, _, credentials = header.partition(" ")
    got_key, sep, got_signature = credentials.partition(":")
    # RFC 9110 §11.1: the scheme is case-insensitive (Sinch's own validator compares it lower-cased)
    signer = next((s for s in signers if s.scheme.lower() == scheme.lower()), None)
    if signer is None or not sep:
        known = next((name for name in KEY_NAMES if name.lower() == scheme.lower()), None)
        if known and sep:
            raise SignatureError("wrong_key", f"signed with the {known} scheme, for which no secret is configured")
        expected = " or ".join(f"'{s.scheme} {KEY_NAMES[s.scheme].split()[-1].upper()}:SIGNATURE'" for s in signers)
        raise SignatureError("malformed", f"expected {expected}")
    if not timestamp:
        raise SignatureError("unsigned", "no x-timestamp header")
    try:
        stamped = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        raise SignatureError("malformed", "x-timestamp is not ISO-8601") from None
    if stamped.tzinfo is None:
        stamped = stamped.replace(tzinfo=UTC)
    if abs((now - stamped).total_seconds()) > max_skew:
        raise SignatureError("stale", f"x-timestamp more than {max_skew:g}s from now")
    if not hmac.compare_digest(_utf8(got_key), _utf8(signer.key)):  # str compare_digest takes ASCII only
        raise SignatureError("wrong_key", f"signed with another {KEY_NAMES[signer.scheme]}")
    try:
        expected_signature = signature(signer.secret_b64, method, body, content_type, timestamp, path)
    except binascii.Error:
        raise SignatureError("malformed", f"the {signer.scheme} secret is not base64") from None
    except UnicodeEncodeError:
        raise SignatureError("malformed", "a signed header or the path is not UTF-8") from None
    if not hmac.compare_digest(_utf8(got_signature), expected_signature.encode()):
        raise SignatureError("forged", "signature does not match")
    return stamped


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")
