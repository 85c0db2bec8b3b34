"""Running a test's coroutine from a plain (synchronous) test function."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

DEADLINE = 300.0  # seconds: far beyond any scenario here, so that one that hangs fails instead of hanging the run


def run(coro: Coroutine[Any, Any, T], deadline: float = DEADLINE) -> T:
    """Run `coro` in a fresh event loop (closed after it); TimeoutError, with where it was waiting, if it has not
    finished after `deadline` seconds."""

    async def bounded() -> T:
        async with asyncio.timeout(deadline):
            return await coro

    return asyncio.run(bounded())
