"""Remembers stream tokens already used, across all workers of one machine, until they expire.

A fixed open-addressing table in shared memory (made by the supervisor before fork) under one process-shared
lock; it is touched once per call setup, never on the media path.
"""

from __future__ import annotations

import mmap
import multiprocessing
import struct

_ENTRY = struct.Struct("=16sd")  # token digest, expiry (unix seconds)
DEFAULT_CAPACITY = 65536  # one minute of tokens at 1,000 call setups a second


class ReplayGuard:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._map = mmap.mmap(-1, capacity * _ENTRY.size)
        self._lock = multiprocessing.get_context("fork").Lock()

    def claim(self, digest: bytes, expires: float, now: float) -> bool:
        """True the first time a token is seen; False for a replay (or a full table: fail closed)."""
        start = int.from_bytes(digest[:8], "little") % self.capacity
        with self._lock:
            free = -1
            for probe in range(self.capacity):
                index = (start + probe) % self.capacity
                seen, expiry = _ENTRY.unpack_from(self._map, index * _ENTRY.size)
                if expiry == 0.0:  # never used: the probe chain ends here
                    free = index if free < 0 else free
                    break
                if seen == digest and expiry >= now:
                    return False
                if expiry < now and free < 0:
                    free = index  # expired: reusable
            if free < 0:
                return False
            _ENTRY.pack_into(self._map, free * _ENTRY.size, digest, expires)
            return True
