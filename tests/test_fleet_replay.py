"""gateway.shared.fleet_replay against Debian's redis-server (started and stopped here): one SET NX PXAT GET a
claim, expiring with the token; a retried claim (same nonce) is still the first use; a store that does not
answer gets the policy's answer, counted."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from prometheus_client import REGISTRY

from gateway.shared import fleet_replay
from gateway.shared.fleet_replay import FleetReplayStore, ReplayStoreUnavailable
from tests.ports import free_port
from tests.redis_server import RedisServer

KEY = bytes(range(16))


@pytest.fixture(scope="module")
def server():
    server = RedisServer().start()
    yield server
    server.stop()


def claims(url: str, *steps, fail_open: bool = False) -> list[object]:
    """Run `steps` (each takes the store) on a fresh store in one loop; their results."""
    async def scenario() -> list[object]:
        store = FleetReplayStore(url, timeout=1.0, fail_open=fail_open, process="worker")
        try:
            await store.connect()
            return [await step(store) for step in steps]
        finally:
            await store.close()

    return asyncio.run(scenario())


def unavailable(outcome: str) -> float:
    return REGISTRY.get_sample_value("gateway_replay_store_unavailable_total",
                                     {"process": "worker", "outcome": outcome}) or 0.0


def test_a_key_is_claimed_once_and_expires_with_its_token(server):
    expires = time.time() + 30
    first, again = claims(server.url, lambda store: store.claim(KEY, expires, time.time()),
                          lambda store: store.claim(KEY, expires, time.time()))
    assert (first, again) == (True, False)
    client = redis.Redis.from_url(server.url)
    assert client.pexpiretime(fleet_replay.KEY_PREFIX + KEY.hex().encode()) == round(expires * 1000)
    client.close()


def test_a_retried_claim_is_still_the_first_use(server, monkeypatch):
    """A reply lost after Redis applied the SET: redis-py retries with the same value, and finds it."""
    key = KEY[::-1]
    monkeypatch.setattr(fleet_replay.os, "urandom", lambda size: b"n" * size)
    expires = time.time() + 30
    assert claims(server.url, lambda store: store.claim(key, expires, time.time()),
                  lambda store: store.claim(key, expires, time.time())) == [True, True]
    monkeypatch.setattr(fleet_replay.os, "urandom", lambda size: b"m" * size)
    assert claims(server.url, lambda store: store.claim(key, expires, time.time())) == [False]


@pytest.mark.parametrize("fail_open", [False, True])
def test_an_unreachable_store_gets_the_policys_answer_counted(fail_open):
    down = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there: connection refused
    outcome = "accepted" if fail_open else "refused"
    before = unavailable(outcome)

    async def claim(store: FleetReplayStore) -> object:
        assert not store.available  # connect() found it down
        try:
            return await store.claim(KEY, time.time() + 30, time.time())
        except ReplayStoreUnavailable:
            return "refused"

    assert claims(down, claim, fail_open=fail_open) == [True if fail_open else "refused"]
    assert unavailable(outcome) == before + 1
    assert REGISTRY.get_sample_value("gateway_replay_store_up", {"process": "worker"}) == 0
