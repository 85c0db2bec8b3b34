"""The worker's listener factory (picows calls it for every upgrade request): it maps `/stream/{route}?rate=HZ`
to a route, authenticates the stream token, binds the call's RTP ports and hands picows the call's adapter, or
refuses the upgrade with an HTTP status: 400 a target that is not an absolute path or a bad query, 426 another
websocket version, 401/403 the token, 404 an unknown route, 503 draining, no RTP port, no descriptors or a fleet's
replay store unavailable (fail_closed). With a fleet's replay store the token is claimed after routing, while
picows upgrades: gateway.dataplane.claims.
"""

from __future__ import annotations

import hmac
import logging
import socket
import time
from typing import Protocol
from urllib.parse import parse_qs

from picows import WSUpgradeRequest, WSUpgradeResponse, WSUpgradeResponseWithListener

from gateway.core import tokens
from gateway.core.request_target import TargetError, parse_origin_form
from gateway.core.tokens import Claims, TokenError
from gateway.dataplane.claims import PendingClaims
from gateway.dataplane.errors import count_internal_error
from gateway.dataplane.forks import Forks
from gateway.dataplane.listener import OUT_OF_DESCRIPTORS
from gateway.dataplane.media import CallAdapter, CallHost
from gateway.dataplane.pools import MediaPools
from gateway.dataplane.ports import NoPortAvailable, bind_udp_pair
from gateway.shared import metrics
from gateway.shared.config import SINCH_RATES, Route
from gateway.shared.fleet_replay import ReplayStoreUnavailable
from gateway.shared.logs import RateLimitedEvent, log_event
from gateway.shared.replay import ReplayGuard

log = logging.getLogger("gateway.worker")

STREAM_PREFIX = "/stream/"
WEBSOCKET_VERSION = "13"  # RFC 6455 §4.1: the only version upgraded


class RouterHost(CallHost, Protocol):
    """What the router needs of its worker, besides what a call's adapter needs."""

    routes: dict[str, Route]
    pools: MediaPools
    replay_guard: ReplayGuard
    fleet_claims: PendingClaims | None  # with replay_store = redis://...: claims in the fleet's store
    calls: set[CallAdapter]
    calls_by_descriptors: int  # the calls the open-files limit leaves room for

    @property
    def serving(self) -> bool: ...


class UpgradeRouter:
    def __init__(self, worker: RouterHost) -> None:
        self.worker = worker
        self._no_fds_log = RateLimitedEvent(log, logging.WARNING, "upgrade.declined")

    def route_request(self, request: WSUpgradeRequest) -> CallAdapter | WSUpgradeResponseWithListener:
        """picows's listener factory. An exception here would reach picows as a bare 500: it is counted and
        logged, and the upgrade declined with 500, like any other decline."""
        try:
            return self._route(request)
        except Exception:
            count_internal_error(log, "worker.error", "routing")
            return decline(500, "internal_error", "internal error")

    def _route(self, request: WSUpgradeRequest) -> CallAdapter | WSUpgradeResponseWithListener:
        try:
            path, query_text = parse_origin_form(request.path)
        except TargetError as exc:
            return decline(400, exc.reason, str(exc))
        if path == "/healthz":
            return WSUpgradeResponseWithListener(WSUpgradeResponse.create_ok_response(b"ok\n"), None)
        if not path.startswith(STREAM_PREFIX):
            return decline(404, "not_found", "not found")
        route = self.worker.routes.get(path[len(STREAM_PREFIX):])
        if route is None:
            return decline(404, "unknown_route", "unknown route")
        version = request.headers.get("sec-websocket-version")
        if version != WEBSOCKET_VERSION:  # RFC 6455 §4.2.2: 426 names the version the server speaks
            if version is None:
                return decline(400, "bad_version", "not a websocket upgrade: no Sec-WebSocket-Version")
            return decline(426, "bad_version", f"websocket version {WEBSOCKET_VERSION} only",
                           headers={"Sec-WebSocket-Version": WEBSOCKET_VERSION})
        if not self.worker.serving:
            return decline(503, "draining", "gateway draining")
        query = parse_qs(query_text, keep_blank_values=True)
        token = query.get("token", [None])[-1]
        try:
            url_rate = _rate_from_query(query)
            claims, claim_later = self._authenticate(route, token)
        except TokenError as exc:  # before ValueError: a TokenError is one (InputError)
            metrics.STREAM_AUTH_FAILED.labels(exc.reason).inc()
            return decline(exc.status, "auth", exc.reason.replace("_", " "))
        except ReplayStoreUnavailable:
            return decline(503, "replay_store_unavailable", "replay store unavailable")
        except ValueError as exc:
            return decline(400, "bad_query", str(exc))
        call = self._new_call(route, claims.rate if claims else url_rate, claims.call_id if claims else "")
        if claim_later and isinstance(call, CallAdapter):
            self.worker.fleet_claims.start(call, tokens.digest(token), claims.expires, time.time())
        return call

    def _new_call(self, route: Route, rate: int | None, call_id: str) -> CallAdapter | WSUpgradeResponseWithListener:
        """The call's RTP/RTCP port pair, then its adapter; a 503 when descriptors or ports have run out."""
        worker = self.worker
        if len(worker.calls) >= worker.calls_by_descriptors:
            return self._decline_no_fds("calls hold every descriptor the open-files limit leaves")
        config = worker.config
        family = socket.AF_INET6 if ":" in config.rtp_host else socket.AF_INET
        try:
            rtp, rtcp = bind_udp_pair(family, config.rtp_host, config.rtp_port_range, config.udp_rcvbuf_bytes)
        except NoPortAvailable:
            return decline(503, "no_rtp_port", "no RTP port available")
        except OSError as exc:
            if exc.errno not in OUT_OF_DESCRIPTORS:
                raise
            return self._decline_no_fds(exc.strerror)
        call = CallAdapter(worker, route, worker.pools.pick(route.name), rate, rtp, rtcp, call_id)
        if route.forks:
            call.forks = Forks.bind(config, family, worker.pools.forks[route.name], route.name)
        return call

    def _authenticate(self, route: Route, token: str | None) -> tuple[Claims | None, bool]:
        """Stream authentication (the upgrade carries no headers: protocol notes §2.1). With a token key, a
        signed single-use token; a route's static token also passes; with neither configured, no check.
        Returns the token's claims, and whether the token is still to be claimed in the fleet's store."""
        if route.token and token and hmac.compare_digest(token.encode(), route.token.encode()):
            return None, False
        config = self.worker.config
        if not config.token_key:
            if route.token:
                raise TokenError(401 if not token else 403, "missing_token" if not token else "forged_token")
            return None, False
        now = time.time()
        claims = tokens.verify(config.token_key, token, route.name, now, config.token_key_previous,
                               config.instance_id)
        fleet = self.worker.fleet_claims
        if fleet is None:
            if not self.worker.replay_guard.claim(tokens.digest(token), claims.expires, now):
                raise TokenError(403, "replayed_token")
            return claims, False
        if fleet.store.available:
            return claims, True
        fleet.store.unavailable_answer()  # fail_closed raises (503); fail_open accepts unchecked
        return claims, False

    def _decline_no_fds(self, detail: str) -> WSUpgradeResponseWithListener:
        """503 `no_fds`: counted as any decline, logged at most once a second (it comes in floods)."""
        return decline(503, "no_fds", "no descriptors available", self._no_fds_log, cause=detail,
                       calls=len(self.worker.calls), calls_by_descriptors=self.worker.calls_by_descriptors)


def _rate_from_query(params: dict[str, list[str]]) -> int | None:
    if "rate" not in params:
        return None
    value = params["rate"][-1]
    if not value.isdigit() or int(value) not in SINCH_RATES:
        raise ValueError(f"rate must be one of {', '.join(map(str, SINCH_RATES))}")
    return int(value)


def decline(
    status: int, reason: str, text: str, report: RateLimitedEvent | None = None,
    headers: dict[str, str] | None = None, **fields: object
) -> WSUpgradeResponseWithListener:
    """Refuse an upgrade with an HTTP status (and `headers`), counted by reason and logged (through `report` if
    it is given)."""
    metrics.UPGRADES_DECLINED.labels(reason).inc()
    if report is None:
        log_event(log, logging.INFO, "upgrade.declined", status=status, reason=reason, detail=text, **fields)
    else:
        report(status=status, reason=reason, detail=text, **fields)
    response = WSUpgradeResponse.create_error_response(status, text.encode() + b"\n")
    response.headers.update(headers or {})
    return WSUpgradeResponseWithListener(response, None)
