"""How fast a call may send audio: a token bucket over its upstream bytes (sans-IO, `now` passed in).

Sinch sends audio at real time; a peer sending much faster only burns the worker's CPU, which every other call
on it shares. The bucket fills at `speed` times the call's real-time byte rate and holds `burst_seconds` of
audio, so a peer catching up after a network stall passes; a flood does not. A speed of 0 turns it off.
"""

from __future__ import annotations


class UpstreamBudget:
    __slots__ = ("_at", "_capacity", "_rate", "_tokens", "_unlimited")

    def __init__(self, bytes_per_second: float, speed: float, burst_seconds: float, now: float) -> None:
        self._unlimited = speed == 0
        self._rate = bytes_per_second * speed
        self._capacity = bytes_per_second * burst_seconds
        self._tokens = self._capacity
        self._at = now

    def take(self, size: int, now: float) -> bool:
        """Spend `size` bytes of budget if there is as much; False (nothing spent) when the call is over it."""
        if self._unlimited:
            return True
        tokens = self._tokens + (now - self._at) * self._rate
        self._tokens = tokens if tokens < self._capacity else self._capacity
        self._at = now
        if size > self._tokens:
            return False
        self._tokens -= size
        return True
