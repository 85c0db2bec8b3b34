"""Remembers what may be used only once, until it expires: stream tokens (checked by the workers) and signed
Sinch callbacks (checked by the control process), across all processes of one machine.

A fixed open-addressing table in shared memory (made by the supervisor before fork, so it outlives any worker
or control process) under one process-shared lock; it is touched a few times per call setup, never on the media
path. The control process sees it as a `ReplayStore` (AnsweredAtOnce), as it sees the store a fleet shares
(gateway.shared.fleet_replay), which takes the table's place when `replay_store` names one.
"""

from __future__ import annotations

import mmap
import multiprocessing
import struct
from typing import Protocol

_ENTRY = struct.Struct("=16sd")  # key (a digest), expiry (unix seconds)
# 12 MiB. A call setup holds one token for token_ttl (60 s) and about three callbacks for callback_max_skew
# (300 s): at the defaults, room for 540 call setups a second, sustained.
DEFAULT_CAPACITY = 1 << 19


class ReplayStore(Protocol):
    async def claim(self, key: bytes, expires: float, now: float) -> bool:
        """True the first time `key` (16 bytes) is seen before `expires` (unix time); False for a replay.
        One atomic set-if-absent with expiry (Redis: SET key NONCE NX PXAT expires GET)."""
        ...


class ReplayGuard:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._map = mmap.mmap(-1, capacity * _ENTRY.size)
        self._lock = multiprocessing.get_context("fork").Lock()

    def claim(self, key: bytes, expires: float, now: float) -> bool:
        """ReplayStore.claim; a full table also answers False (fail closed)."""
        start = int.from_bytes(key[:8], "little") % self.capacity
        with self._lock:
            free = -1
            for probe in range(self.capacity):
                index = (start + probe) % self.capacity
                seen, expiry = _ENTRY.unpack_from(self._map, index * _ENTRY.size)
                if expiry == 0.0:  # never used: the probe chain ends here
                    free = index if free < 0 else free
                    break
                if seen == key and expiry >= now:
                    return False
                if expiry < now and free < 0:
                    free = index  # expired: reusable
            if free < 0:
                return False
            _ENTRY.pack_into(self._map, free * _ENTRY.size, key, expires)
            return True


class AnsweredAtOnce:
    """The machine's table as a ReplayStore: it answers at once."""

    def __init__(self, guard: ReplayGuard) -> None:
        self.guard = guard

    async def claim(self, key: bytes, expires: float, now: float) -> bool:
        return self.guard.claim(key, expires, now)
