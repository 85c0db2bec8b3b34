"""UDP port pairs for RTP: an even port for RTP and the next odd one for RTCP (RFC 3550 §11)."""

from __future__ import annotations

import errno
import random
import socket

from gateway.shared.config import even_odd_pairs

BIND_ATTEMPTS = 64


class NoPortAvailable(OSError):
    """No free even/odd port pair was found in the configured range."""


def bind_udp_pair(
    family: int, host: str, port_range: tuple[int, int], rcvbuf: int = 0
) -> tuple[socket.socket, socket.socket]:
    """Bind a random free even/odd pair in the range. Random probing needs no coordination between worker
    processes sharing the range; a collision just costs one more attempt."""
    low, high = port_range
    first_even, pairs = even_odd_pairs(port_range)
    if pairs < 1:
        raise NoPortAvailable(errno.EADDRNOTAVAIL, f"no even/odd port pair in {low}-{high}")
    for _ in range(min(BIND_ATTEMPTS, pairs)):
        port = first_even + 2 * random.randrange(pairs)
        rtp = _udp_socket(family, rcvbuf)
        try:
            rtcp = _udp_socket(family, 0)
        except OSError:  # out of descriptors (EMFILE): the caller declines, and this one is given back
            rtp.close()
            raise
        try:
            rtp.bind((host, port))
            rtcp.bind((host, port + 1))
        except OSError as exc:
            rtp.close()
            rtcp.close()
            if exc.errno != errno.EADDRINUSE:
                raise
            continue
        return rtp, rtcp
    raise NoPortAvailable(errno.EADDRINUSE, f"no free RTP port pair in {low}-{high} after {BIND_ATTEMPTS} tries")


def pairs_taken(bound_ports: set[int], port_range: tuple[int, int]) -> int:
    """How many pairs of the range cannot be had: those with either port bound (by any process)."""
    first_even, pairs = even_odd_pairs(port_range)
    end = first_even + 2 * pairs
    return len({port - (port - first_even) % 2 for port in bound_ports if first_even <= port < end})


def _udp_socket(family: int, rcvbuf: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    if rcvbuf:
        # Bursts beyond the receive buffer are dropped silently by the kernel (design notes).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    return sock
