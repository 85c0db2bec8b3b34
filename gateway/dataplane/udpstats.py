"""The machine's UDP sockets, read from /proc/net/udp{,6}: each one's local port, inode and kernel drops.

The kernel drops datagrams silently when a socket's receive buffer is full (design notes); the `drops` column
is the only place the count shows. The local ports tell how much of `rtp_ports` is taken, by every worker and
any other process of the machine. Linux only; elsewhere it reports nothing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

PROC_FILES = ("/proc/net/udp", "/proc/net/udp6")
LOCAL_ADDRESS_COLUMN = 1
INODE_COLUMN = 9
DROPS_COLUMN = 12


def socket_inode(sock: socket.socket) -> int:
    return os.fstat(sock.fileno()).st_ino


def udp_sockets() -> Iterator[tuple[int, int, int]]:
    """(local port, inode, cumulative drops) of every UDP socket of this network namespace."""
    for path in PROC_FILES:
        try:
            with open(path) as file:
                next(file)  # header
                rows = [line.split() for line in file]
        except (OSError, StopIteration):
            continue
        for fields in rows:
            try:
                port = int(fields[LOCAL_ADDRESS_COLUMN].rpartition(":")[2], 16)  # ADDR:PORT in hex
                yield port, int(fields[INODE_COLUMN]), int(fields[DROPS_COLUMN])
            except (IndexError, ValueError):
                continue
