"""The one base of every error a peer's input can cause: each carries a short `reason`, the metric label it is
counted under (a fixed set per kind), and a message for the log that says what was wrong."""

from __future__ import annotations


class InputError(ValueError):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason
