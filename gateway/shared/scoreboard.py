"""Shared memory between the supervisor, its workers and the control process (an anonymous mmap made before
fork): each worker slot holds the worker's pid, state and last heartbeat (CLOCK_MONOTONIC, the same clock in
every process); the header holds the supervisor's state. Each field has one writer, so no locks.
"""

from __future__ import annotations

import enum
import mmap
import struct
import time

MAX_SLOTS = 256
_HEADER = struct.Struct("=q")  # supervisor state
_SLOT = struct.Struct("=qqd")  # pid, worker state, heartbeat


class GatewayState(enum.IntEnum):
    BOOTING = 0
    RUNNING = 1
    DRAINING = 2
    LEAVING = 3  # SIGUSR2: not ready (load balancers stop sending calls), still taking the calls that come


class WorkerState(enum.IntEnum):
    EMPTY = 0
    BOOTING = 1
    SERVING = 2
    DRAINING = 3  # no new calls; finishing the ones it has


class Scoreboard:
    def __init__(self) -> None:
        self._map = mmap.mmap(-1, _HEADER.size + MAX_SLOTS * _SLOT.size)

    # ---- supervisor ------------------------------------------------------------------------------------
    @property
    def gateway_state(self) -> GatewayState:
        return GatewayState(_HEADER.unpack_from(self._map, 0)[0])

    @gateway_state.setter
    def gateway_state(self, state: GatewayState) -> None:
        _HEADER.pack_into(self._map, 0, state)

    def free_slot(self) -> int:
        for slot in range(MAX_SLOTS):
            if self.read(slot)[0] == 0:
                return slot
        raise RuntimeError(f"more than {MAX_SLOTS} worker processes")

    def assign(self, slot: int, pid: int) -> None:
        _SLOT.pack_into(self._map, self._offset(slot), pid, WorkerState.BOOTING, time.monotonic())

    def clear(self, slot: int) -> None:
        _SLOT.pack_into(self._map, self._offset(slot), 0, WorkerState.EMPTY, 0.0)

    # ---- worker ----------------------------------------------------------------------------------------
    def beat(self, slot: int, pid: int, state: WorkerState) -> None:
        _SLOT.pack_into(self._map, self._offset(slot), pid, state, time.monotonic())

    # ---- anyone ----------------------------------------------------------------------------------------
    def read(self, slot: int) -> tuple[int, WorkerState, float]:
        pid, state, beat = _SLOT.unpack_from(self._map, self._offset(slot))
        return pid, WorkerState(state), beat

    def workers(self) -> list[tuple[int, WorkerState, float]]:
        return [entry for slot in range(MAX_SLOTS) if (entry := self.read(slot))[0]]

    def ready(self, max_age: float) -> bool:
        """Ready for new calls: the gateway runs and at least one worker serves with a fresh heartbeat."""
        if self.gateway_state is not GatewayState.RUNNING:
            return False
        now = time.monotonic()
        return any(state is WorkerState.SERVING and now - beat < max_age for _, state, beat in self.workers())

    @staticmethod
    def _offset(slot: int) -> int:
        return _HEADER.size + slot * _SLOT.size
