"""UDP helpers: an RTP/RTCP port pair (even port, then the next odd one: RFC 3550 §11) and address parsing."""

from __future__ import annotations

import errno
import random
import socket

PAIR_RANGE = (33000, 39998)  # clear of the gateway's per-call range (16384-32767) and its echo (40000+)
BIND_ATTEMPTS = 64
RCVBUF = 4 * 1024 * 1024  # one socket carries every call: room for bursts (capped by net.core.rmem_max)


def parse_host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def udp_socket(host: str, port: int, rcvbuf: int = RCVBUF) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, rcvbuf)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def bind_pair(host: str, port: int = 0) -> tuple[socket.socket, socket.socket]:
    """RTP on `port` and RTCP on `port + 1`; port 0 picks a free even port in PAIR_RANGE."""
    if port:
        if port % 2:
            raise ValueError(f"RTP port {port} must be even (RTCP takes the next one)")
        rtp = udp_socket(host, port)
        try:
            return rtp, udp_socket(host, port + 1)
        except OSError:
            rtp.close()
            raise
    low, high = PAIR_RANGE
    for _ in range(BIND_ATTEMPTS):
        candidate = random.randrange(low, high, 2)
        try:
            return bind_pair(host, candidate)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, f"no free even/odd UDP port pair in {low}-{high}")
