"""Kernel receive drops of UDP sockets, read from /proc/net/udp{,6} (the `drops` column, per socket inode).

The kernel drops datagrams silently when a socket's receive buffer is full (design notes); this is the only
place the count shows. Linux only; elsewhere it reports nothing.
"""

from __future__ import annotations

import os
import socket

PROC_FILES = ("/proc/net/udp", "/proc/net/udp6")
INODE_COLUMN = 9
DROPS_COLUMN = 12


def socket_inode(sock: socket.socket) -> int:
    return os.fstat(sock.fileno()).st_ino


def read_drops(inodes: set[int]) -> dict[int, int]:
    """Cumulative drops of the sockets with these inodes (those still open)."""
    drops: dict[int, int] = {}
    for path in PROC_FILES:
        try:
            with open(path) as file:
                next(file)  # header
                for line in file:
                    fields = line.split()
                    inode = int(fields[INODE_COLUMN])
                    if inode in inodes:
                        drops[inode] = int(fields[DROPS_COLUMN])
        except (OSError, IndexError, ValueError, StopIteration):
            continue
    return drops
