"""A route's targets and their health, sans-IO: which target a new call goes to (round_robin, least_calls),
which calls each target carries, which targets are marked down. Touched when a call starts, ends or moves,
never per frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class PoolTarget:
    """One media service of a route: its name as configured (`HOST:PORT`), the address it resolved to, whether
    new calls may go to it, and the calls it carries."""

    __slots__ = ("address", "calls", "name", "up")

    def __init__(self, name: str, address: tuple[str, int]) -> None:
        self.name = name
        self.address = address
        self.up = True
        self.calls: set[Any] = set()


class TargetPool:
    def __init__(self, policy: str, targets: Sequence[PoolTarget]) -> None:
        self.policy = policy
        self.targets = tuple(targets)
        self._next = 0  # round_robin: where the next pick starts

    def pick(self, avoid: PoolTarget | None = None) -> PoolTarget | None:
        """The target for a call: among those up (other than `avoid`), by the policy. None when none is: a call
        that moves stays where it is; a new call (no `avoid`) then goes to any target, by the policy, since
        a mark can be stale until the next probe."""
        candidates = [target for target in self.targets if target.up and target is not avoid]
        if not candidates:
            if avoid is not None:
                return None
            candidates = list(self.targets)
        if self.policy == "least_calls":
            return min(candidates, key=lambda target: len(target.calls))  # the first listed among equals
        in_turn = self.targets[self._next:] + self.targets[:self._next]
        target = next(target for target in in_turn if target in candidates)
        self._next = (self.targets.index(target) + 1) % len(self.targets)
        return target
