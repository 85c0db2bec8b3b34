"""Stream tokens claimed in a fleet's replay store (gateway.shared.fleet_replay) from a worker.

picows's listener factory (the router) must answer an upgrade at once, and the store answers a round trip later.
Blocking the worker's loop for that round trip would stall the pacing of every call it carries, and declining
until the store answers would need a second upgrade. So the upgrade is accepted with the claim under way, and
the call's websocket is not read until the store has answered: Sinch's connect command waits in the socket
(a client sends nothing before the 101: RFC 6455 §4.1), and no call is answered on a token not yet claimed.
- First use: reading resumes; the connect is answered as any other.
- A replay: closed 1008 `replayed token` before any answer, counted as a refused token (replayed_token).
- No answer within replay_store_timeout, under fail_closed: closed 1013 (Try Again Later, IANA's close code
  registry) before any answer; under fail_open, answered unchecked.
While the store is known unavailable the router does not ask it: 503 (fail_closed) or unchecked (fail_open) at
once. A connect that arrives while the claim is under way all the same (a client that did not wait for the 101)
is answered busy.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from gateway.dataplane.errors import count_internal_error
from gateway.dataplane.media import CallAdapter
from gateway.shared import metrics
from gateway.shared.fleet_replay import FleetReplayStore, ReplayStoreUnavailable
from gateway.shared.logs import log_event

log = logging.getLogger("gateway.worker")

POLICY_VIOLATION = 1008  # RFC 6455 §7.4.1
TRY_AGAIN_LATER = 1013  # IANA WebSocket close code registry
INTERNAL_ERROR = 1011


class PendingClaims:
    def __init__(self, store: FleetReplayStore, loop: asyncio.AbstractEventLoop) -> None:
        self.store = store
        self.loop = loop
        self._pending: dict[CallAdapter, asyncio.Task[bool]] = {}

    def start(self, call: CallAdapter, key: bytes, expires: float, now: float) -> None:
        """Claim `key` for `call`, whose upgrade is being accepted: picows calls on_ws_connected (and so
        `connected`) before the claim's first step runs."""
        task = self.loop.create_task(self.store.claim(key, expires, now))
        self._pending[call] = task
        task.add_done_callback(partial(self._answered, call))

    def holds(self, call: CallAdapter) -> bool:
        """Whether `call`'s token is still being claimed."""
        return call in self._pending

    def connected(self, call: CallAdapter) -> None:
        """`call`'s websocket is up: read nothing from it until the claim has answered."""
        if call in self._pending:
            call.transport.underlying_transport.pause_reading()

    def _answered(self, call: CallAdapter, task: asyncio.Task[bool]) -> None:
        del self._pending[call]
        if call.session is None or call.transport.is_disconnected:
            return  # the upgrade failed after routing, or the peer left: nothing to answer
        call.transport.underlying_transport.resume_reading()  # a close handshake needs the peer's close read
        try:
            first = task.result()
        except ReplayStoreUnavailable:
            self._refuse(call, TRY_AGAIN_LATER, "replay store unavailable")
            return
        except Exception:
            count_internal_error(log, "worker.error", "routing")
            self._refuse(call, INTERNAL_ERROR, "internal error")
            return
        if not first:
            metrics.STREAM_AUTH_FAILED.labels("replayed_token").inc()
            self._refuse(call, POLICY_VIOLATION, "replayed token")

    def _refuse(self, call: CallAdapter, code: int, reason: str) -> None:
        log_event(log, logging.INFO, "call.refused", call_id=call.expected_call_id, code=code, reason=reason)
        call.session.shutdown(code, reason, self.loop.time())
