"""POST /sinch/callback: Sinch's ICE, ACE, DiCE, PIE and Notify events, verified and answered.

Runs in the control process on its own listener (`callback_listen`, facing Sinch), never in the media
workers. Signature verification (gateway.signing) is on whenever an application secret is configured.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import msgspec
from aiohttp import web

from gateway.control import ice
from gateway.core import signing
from gateway.shared import metrics
from gateway.shared.config import Config
from gateway.shared.logs import log_event

log = logging.getLogger("gateway.callbacks")

CALLBACK_PATH = "/sinch/callback"
MAX_BODY = 64 * 1024
_encode = msgspec.json.Encoder().encode


def build_callback_app(config: Config) -> web.Application:
    async def callback(request: web.Request) -> web.Response:
        body = await request.read()
        if config.verify_callbacks and config.sinch_application_secret:
            try:
                signing.verify(
                    request.headers.get("Authorization"), config.sinch_application_key,
                    config.sinch_application_secret, request.method, body,
                    request.headers.get("Content-Type", ""), request.headers.get("x-timestamp"),
                    request.path, datetime.now(UTC), config.callback_max_skew,
                )
            except signing.SignatureError as exc:
                metrics.CALLBACKS_REJECTED.labels(exc.reason).inc()
                log_event(log, logging.WARNING, "callback.rejected", reason=exc.reason, detail=str(exc))
                return web.Response(status=401, text=f"{exc.reason}: {exc}\n")
        try:
            name, event = ice.parse_event(body)
            svaml, detail = answer(config, name, event)
        except ice.CallbackError as exc:
            metrics.CALLBACKS_REJECTED.labels(exc.reason).inc()
            log_event(log, logging.WARNING, "callback.rejected", reason=exc.reason, detail=str(exc))
            return web.Response(status=400, text=f"{exc.reason}: {exc}\n")
        metrics.CALLBACKS.labels(name).inc()
        log_event(log, logging.INFO, "callback." + name, call_id=ice.call_id_of(event), **detail)
        if svaml is None:
            return web.Response(status=200)
        return web.Response(body=_encode(svaml), content_type="application/json")

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post(CALLBACK_PATH, callback)
    return app


def answer(config: Config, name: str, event: dict) -> tuple[dict | None, dict]:
    """SVAML to answer with (None: 200 without a body), and what to log."""
    if name == "ice":
        parsed = ice.parse_ice(event)
        svaml, chosen = ice.answer_ice(config, parsed, time.time())
        return svaml, {"action": svaml["action"]["name"], "route": chosen, "to": parsed.to}
    if name == "dice":
        reason, result = str(event.get("reason", "")), str(event.get("result", ""))
        metrics.CALLS_DISCONNECTED.labels(
            reason if reason in metrics.DICE_REASONS else "other", result if result in metrics.DICE_RESULTS else "other"
        ).inc()
        return None, {"reason": reason, "result": result, "duration": event.get("duration")}
    if name == "notify":
        return None, {"type": str(event.get("type", ""))}
    return ice.CONTINUE, {}  # ACE and PIE: let the call go on as its SVAML said
