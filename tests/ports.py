"""Ports for tests that never collide within a run.

Binding port 0 and closing the socket (the usual trick) lets the kernel hand the same port out again: two
gateways of one test were given one port and a clean-clone run failed. Here ports come from a cursor over a
range clear of the kernel's ephemeral ports (outgoing connections take those), of the gateway's per-call RTP
range and of the ranges the media simulators bind themselves; each is handed out at most once per process and
checked free when handed out. The cursor starts at a random place, so separate test runs on one machine rarely
meet.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator

GATEWAY_RTP = range(16384, 32768)  # the gateway's default rtp_ports
SIMULATORS = range(33000, 60000)  # loadtest pairs, the embedded echo, MediaPeer, ffmpeg's pairs
LOWEST = 10000


def _ephemeral() -> range:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as file:
            low, high = map(int, file.read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def _candidates() -> list[int]:
    taken = (_ephemeral(), GATEWAY_RTP, SIMULATORS)
    ports = [port for port in range(LOWEST, 65535, 2) if not any(port in r or port + 1 in r for r in taken)]
    start = random.randrange(len(ports))
    return ports[start:] + ports[:start]


def _cursor() -> Iterator[int]:
    yield from _candidates()
    raise RuntimeError("tests.ports: every port of the range was handed out")


_next_even = _cursor()


def _bindable(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free for `kind` on 127.0.0.1 that no other caller in this process has been given."""
    return free_port_pair(kind)


def free_port_pair(kind: int = socket.SOCK_DGRAM) -> int:
    """An even port whose odd neighbour is free too (RTP and RTCP, RFC 3550 §11); both are reserved."""
    for port in _next_even:
        if _bindable(port, kind) and _bindable(port + 1, kind):
            return port
    raise AssertionError("unreachable")
