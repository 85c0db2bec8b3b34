"""The request target of an upgrade, parsed strictly as origin-form: `absolute-path [ "?" query ]`
(RFC 9112 §3.2.1, with RFC 3986 §3.3-3.4 characters). Anything else, the absolute-form, the asterisk-form, a
bracket or a space, is refused: urlsplit would have read `//evil/stream/echo` as a host and a path."""

from __future__ import annotations

from gateway.core.errors import InputError

_UNRESERVED = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
_SUB_DELIMS = b"!$&'()*+,;="
_PATH_CHARS = frozenset(_UNRESERVED + _SUB_DELIMS + b":@%/")  # pchar and "/", RFC 3986 §3.3
_QUERY_CHARS = _PATH_CHARS | frozenset(b"?")  # RFC 3986 §3.4
_HEX = frozenset(b"0123456789abcdefABCDEF")


class TargetError(InputError):
    """A request target that is not origin-form."""


def parse_origin_form(target: bytes) -> tuple[str, str]:
    """(path, query) of an origin-form target; the query without its "?", still percent-encoded."""
    path, _, query = target.partition(b"?")
    if not path.startswith(b"/"):
        raise TargetError("bad_target", "the request target must be an absolute path (origin-form)")
    _check(path, _PATH_CHARS, "path")
    _check(query, _QUERY_CHARS, "query")
    return path.decode("ascii"), query.decode("ascii")


def _check(part: bytes, allowed: frozenset[int], what: str) -> None:
    if not allowed.issuperset(part):
        raise TargetError("bad_target", f"a character not allowed in a {what} (RFC 3986)")
    start = part.find(b"%")
    while start >= 0:
        if len(part) < start + 3 or not _HEX.issuperset(part[start + 1:start + 3]):
            raise TargetError("bad_target", f"a bad percent-encoding in the {what}")
        start = part.find(b"%", start + 3)
