"""Replay protection shared by a fleet (`replay_store = "redis://HOST:PORT/DB"`): a stream token, or a signed
callback, is accepted once whichever instance it reaches. Redis or Valkey (7.0 or newer), through redis-py's
asyncio client; each worker and the control process holds its own connections (made after fork).

One command per claim: `SET gateway:replay:<key> <nonce> NX PXAT <expiry> GET` (Redis SET: NX and GET together
since 7.0). It answers nil when the key was absent (this claim set it) or the value there, so a retry after a
lost reply sees its own nonce and still counts as the first use: the retry is idempotent.

When the store does not answer within `replay_store_timeout`, `replay_store_unavailable` decides: `fail_closed`
refuses the call, `fail_open` accepts it unchecked; both are counted (gateway_replay_store_unavailable_total).
From the first failure on the store is known unavailable and is not asked again: a probe PINGs it every
PROBE_INTERVAL until it answers, and meanwhile every claim gets the policy's answer at once (so a worker's
upgrades get 503 without waiting: gateway.dataplane.claims).
"""

from __future__ import annotations

import asyncio
import logging
import os

import redis.asyncio
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from gateway.shared import metrics
from gateway.shared.config import Config
from gateway.shared.logs import log_event

log = logging.getLogger("gateway.replay")

KEY_PREFIX = b"gateway:replay:"
PROBE_INTERVAL = 1.0  # seconds between PINGs while the store is unavailable
# Errors that mean the store did not answer: redis-py's own (connection, timeout, a server error such as
# LOADING), the socket's, and the claim's deadline.
STORE_ERRORS = (RedisError, OSError, TimeoutError)


class ReplayStoreUnavailable(Exception):
    """The store did not answer and the policy is fail_closed: refuse the call (503)."""


class FleetReplayStore:
    def __init__(self, url: str, timeout: float, fail_open: bool, process: str) -> None:
        """`process` names who holds it (worker, control) in its log lines and metrics."""
        self._redis = redis.asyncio.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), retries=1),  # one retry on a fresh connection: a pooled one may be stale
        )
        self.timeout = timeout
        self.fail_open = fail_open
        self.process = process
        self.available = True
        self._probe: asyncio.Task[None] | None = None
        self._available_gauge = metrics.REPLAY_STORE_UP.labels(process)
        self._available_gauge.set(1)

    @classmethod
    def from_config(cls, config: Config, process: str) -> FleetReplayStore:
        return cls(config.replay_store, config.replay_store_timeout, config.replay_store_unavailable == "fail_open",
                   process)

    async def connect(self) -> None:
        """Open the first connection before any call needs it (a claim that also had to connect could miss
        its deadline); a store not answering now is known unavailable, as after a failed claim."""
        try:
            async with asyncio.timeout(self.timeout):
                await self._redis.ping()
        except STORE_ERRORS as exc:
            self._lost(exc)

    async def claim(self, key: bytes, expires: float, now: float) -> bool:
        """True the first time `key` is claimed before `expires` (unix time), False for a replay (the
        ReplayStore contract). While the store is unavailable: the policy's answer (unavailable_answer)."""
        if self.available:
            started = asyncio.get_running_loop().time()
            try:
                async with asyncio.timeout(self.timeout):
                    first = await self._set_if_absent(key, expires)
            except STORE_ERRORS as exc:
                self._lost(exc)
            else:
                metrics.REPLAY_STORE_CLAIM.observe(asyncio.get_running_loop().time() - started)
                return first
        return self.unavailable_answer()

    async def _set_if_absent(self, key: bytes, expires: float) -> bool:
        nonce = os.urandom(8)
        seen = await self._redis.set(KEY_PREFIX + key.hex().encode(), nonce, nx=True, get=True,
                                     pxat=max(1, round(expires * 1000)))
        return seen is None or seen == nonce

    def unavailable_answer(self) -> bool:
        """The policy's answer while the store is unavailable, counted: True under fail_open (accepted
        unchecked); ReplayStoreUnavailable under fail_closed."""
        metrics.REPLAY_STORE_UNAVAILABLE.labels(self.process, "accepted" if self.fail_open else "refused").inc()
        if self.fail_open:
            return True
        raise ReplayStoreUnavailable("the replay store is unavailable")

    def _lost(self, exc: BaseException) -> None:
        """The store did not answer: known unavailable until the probe reaches it again."""
        if not self.available:
            return
        self.available = False
        self._available_gauge.set(0)
        log_event(log, logging.ERROR, "replay_store.unavailable", process=self.process,
                  error=str(exc) or type(exc).__name__,
                  policy="fail_open" if self.fail_open else "fail_closed")
        self._probe = asyncio.get_running_loop().create_task(self._until_reachable())

    async def _until_reachable(self) -> None:
        while True:
            await asyncio.sleep(PROBE_INTERVAL)
            try:
                async with asyncio.timeout(self.timeout):
                    await self._redis.ping()
            except STORE_ERRORS:
                continue
            self.available = True
            self._available_gauge.set(1)
            log_event(log, logging.INFO, "replay_store.available", process=self.process)
            return

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        await self._redis.aclose()
