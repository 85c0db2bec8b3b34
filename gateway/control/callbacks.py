"""POST /sinch/callback: Sinch's callbacks, verified and answered: Voice API 1's ICE, ACE, DiCE, PIE and Notify
events, and Voice API 2.0's webhooks (call.incoming, call.answered, call.hangup, ...).

Runs in the control process on its own listener (`callback_listen`, facing Sinch), never in the media
workers. Signature verification (gateway.signing) is on whenever an application or a service secret is
configured, each scheme checked with its own secret (`Application` with the application's, `service` with the
service's); a verified callback is then accepted once: its signature (an ICE or a call.incoming: its call id)
is remembered in the replay store until its x-timestamp leaves the skew window, and a second one is refused 401
`replayed` (503 `replay_store_unavailable` when a fleet's store does not answer and replay_store_unavailable is
fail_closed).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import msgspec
from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.control import ice, incoming
from gateway.core import signing
from gateway.shared import metrics
from gateway.shared.config import Config
from gateway.shared.fleet_replay import ReplayStoreUnavailable
from gateway.shared.logs import log_event
from gateway.shared.replay import ReplayStore

log = logging.getLogger("gateway.callbacks")

CALLBACK_PATH = "/sinch/callback"
MAX_BODY = 64 * 1024
_encode = msgspec.json.Encoder().encode


def build_callback_app(config: Config, replay: ReplayStore, middlewares: Sequence[Middleware]) -> web.Application:
    async def callback(request: web.Request) -> web.Response:
        body = await request.read()
        return await respond(config, replay, request.method, request.path, request.headers, body, time.time())

    app = web.Application(client_max_size=MAX_BODY, middlewares=middlewares)
    app.router.add_post(CALLBACK_PATH, callback)
    return app


async def respond(config: Config, replay: ReplayStore, method: str, path: str, headers: Mapping[str, str],
                  body: bytes, now: float) -> web.Response:
    """The answer to one callback request: 200 with SVAML (or empty), 400 for a body the gateway cannot use,
    401 for a signature that does not check out or a replay. `now` is unix time."""
    try:
        stamped = _verify(config, method, path, headers, body, now)
        name, event = ice.parse_event(body)
        call = _incoming_call(name, event)
        if stamped is not None:
            await _accept_once(replay, name, call, headers, stamped + config.callback_max_skew, now)
    except signing.SignatureError as exc:
        return _rejected(401, exc.reason, exc)
    except ReplayStoreUnavailable as exc:
        return _rejected(503, "replay_store_unavailable", exc)
    except ice.CallbackError as exc:
        return _rejected(400, exc.reason, exc)
    reply, detail = answer(config, name, event, call, now)
    label = event_label(name)
    metrics.CALLBACKS.labels(label).inc()
    log_event(log, logging.INFO, "callback." + label, call_id=ice.call_id_of(event), **detail)
    if reply is None:
        return web.Response(status=200)
    return web.Response(body=_encode(reply), content_type="application/json")


def signers(config: Config) -> tuple[signing.Signer, ...]:
    """Whoever may sign callbacks: the application (Voice API 1), the service (2.0), or both."""
    return tuple(signing.Signer(scheme, key, secret) for scheme, key, secret in (
        (signing.APPLICATION, config.sinch_application_key, config.sinch_application_secret),
        (signing.SERVICE, config.sinch_service_id, config.sinch_service_secret),
    ) if secret)


def _verify(config: Config, method: str, path: str, headers: Mapping[str, str], body: bytes,
            now: float) -> float | None:
    """The request's x-timestamp (unix time) once its signature checks out; None when callbacks go unverified."""
    if not config.callbacks_signed:
        return None
    return signing.verify(
        headers.get("Authorization"), signers(config), method, body, headers.get("Content-Type", ""),
        headers.get("x-timestamp"), path, datetime.fromtimestamp(now, UTC), config.callback_max_skew,
    ).timestamp()


def _incoming_call(name: str, event: dict) -> ice.Ice | incoming.Incoming | None:
    """The parsed event of a call that asks for a stream: an ICE or a call.incoming."""
    if name == "ice":
        return ice.parse_ice(event)
    if name == incoming.EVENT:
        return incoming.parse_incoming(event)
    return None


async def _accept_once(replay: ReplayStore, name: str, call: ice.Ice | incoming.Incoming | None,
                       headers: Mapping[str, str], expires: float, now: float) -> None:
    """A signed request is valid until its x-timestamp is `callback_max_skew` old: remember it that long.
    An ICE or a call.incoming is remembered by its call id, since a second one for a call would get a second
    stream token; any other callback by its signature. 401 like any spent credential (a replayed DPoP proof:
    RFC 9449 §11.1)."""
    if call is None:
        what = f"signature\n{headers.get('Authorization')}"
    else:
        what = f"{name}\n{call.call_id if isinstance(call, ice.Ice) else call.call.call_id}"
    key = hashlib.sha256(what.encode("utf-8", "surrogatepass")).digest()[:16]
    if not await replay.claim(key, expires, now):
        raise signing.SignatureError("replayed", "this callback was already accepted")


def event_label(name: str) -> str:
    """The event's `event` label: a Voice API 1 event, or a 2.0 event Sinch documents; customEvent webhooks as
    call.webhook, any other call.* as call.other, so a caller cannot mint series."""
    if name in metrics.CALLBACK_EVENTS:
        return name
    return "call.webhook" if name.startswith("call.webhook.") else "call.other"


def _rejected(status: int, reason: str, exc: Exception) -> web.Response:
    metrics.CALLBACKS_REJECTED.labels(reason).inc()
    log_event(log, logging.WARNING, "callback.rejected", reason=reason, detail=str(exc))
    return web.Response(status=status, text=f"{reason}: {exc}\n")


def answer(config: Config, name: str, event: dict, call: ice.Ice | incoming.Incoming | None,
           now: float) -> tuple[dict | None, dict]:
    """SVAML to answer with (None: 200 without a body), and what to log. `call` is the parsed event of an ICE
    or a call.incoming."""
    if isinstance(call, ice.Ice):
        svaml, chosen = ice.answer_ice(config, call, now)
        return svaml, {"action": svaml["action"]["name"], "route": chosen, "to": call.to}
    if call is not None:
        reply, chosen = incoming.answer_incoming(config, call, now)
        return reply, {"route": chosen, "to": call.call.to, "session_id": call.session_id}
    if name.startswith(ice.V2_EVENT_PREFIX):  # Voice API 2.0's other events: acknowledged, their call goes on
        v2_call = event.get("call")
        return None, {"type": name, "session_id": ice.text(v2_call.get("sessionId")) if isinstance(v2_call, dict)
                      else ""}
    if name == "dice":
        reason, result = ice.text(event.get("reason")), ice.text(event.get("result"))
        metrics.CALLS_DISCONNECTED.labels(
            reason if reason in metrics.DICE_REASONS else "other", result if result in metrics.DICE_RESULTS else "other"
        ).inc()
        duration = event.get("duration")
        return None, {"reason": reason, "result": result,
                      "duration": duration if isinstance(duration, int | float) else None}
    if name == "notify":
        return None, {"type": ice.text(event.get("type"))}
    return ice.CONTINUE, {}  # ACE and PIE: let the call go on as its SVAML said
