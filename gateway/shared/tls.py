"""TLS for the listeners that face Sinch (`wss://` streams, `https://` callbacks), when the gateway itself
terminates TLS instead of a load balancer in front of it.

The files are read when the configuration is loaded (a bad file is a config error naming the key, also on
SIGHUP, which leaves the running gateway as it was) and again by each process that serves, so a renewed
certificate takes effect with a SIGHUP.
"""

from __future__ import annotations

import ssl


class TlsError(ValueError):
    """The certificate or key cannot be used; the message names the key."""


def server_context(cert_path: str, key_path: str) -> ssl.SSLContext | None:
    """A server context for the PEM certificate chain and key, or None when TLS is off (both empty)."""
    if not cert_path and not key_path:
        return None
    if not cert_path or not key_path:
        missing, given = ("tls_cert", "tls_key") if not cert_path else ("tls_key", "tls_cert")
        raise TlsError(f"{missing}: needed together with {given} (both PEM files)")
    for key, path in (("tls_cert", cert_path), ("tls_key", key_path)):
        try:
            with open(path, "rb"):
                pass  # ssl's own error would not say which file is missing or unreadable
        except OSError as exc:
            raise TlsError(f"{key}: {path}: {exc.strerror}") from None
        except ValueError:  # a NUL in the path
            raise TlsError(f"{key}: {path!r}: not a file name") from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 8996: TLS 1.0 and 1.1 are deprecated
    try:
        context.load_cert_chain(cert_path, key_path)
    except ssl.SSLError as exc:
        raise TlsError(f"tls_cert/tls_key: {cert_path} and {key_path} are not a matching PEM certificate chain "
                       f"and key ({exc.reason or exc})") from None
    return context
