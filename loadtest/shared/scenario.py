"""Scenarios: what load to drive, from a TOML file and/or flags, validated into one frozen object; and the
deterministic call plan it expands to (same scenario + seed = same calls at the same offsets)."""

from __future__ import annotations

import math
import random
import secrets
from collections.abc import Mapping
from typing import Annotated, Any, Literal, NamedTuple
from urllib.parse import urlsplit

import msgspec

from gateway.shared.config import ConfigError, name_the_key, read_toml
from loadtest.shared.thresholds import Thresholds
from loadtest.shared.udp import parse_host_port

SINCH_RATES = (8000, 16000, 24000, 44100, 48000, 96000)
MIN_CALL_SECONDS = 0.2  # shorter calls would end before their first echo: not worth planning

NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Positive = Annotated[float, msgspec.Meta(gt=0)]
Count = Annotated[int, msgspec.Meta(ge=0)]
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1)]


class ScenarioError(ValueError):
    """An invalid scenario; the message names the key."""


class DurationSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How long churn calls last, in seconds: drawn from the distribution, then clamped to [min, max]."""

    distribution: Literal["fixed", "uniform", "exponential", "lognormal"] = "exponential"
    mean: Positive = 20.0
    min: NonNegative = 1.0
    max: Positive = 600.0

    def draw(self, rng: random.Random) -> float:
        if self.distribution == "fixed":
            value = self.mean
        elif self.distribution == "uniform":
            value = rng.uniform(self.min, 2 * self.mean - self.min)
        elif self.distribution == "exponential":
            value = rng.expovariate(1.0 / self.mean)
        else:  # lognormal with this mean and sigma 0.8: a long tail of long calls, like real call logs
            sigma = 0.8
            value = rng.lognormvariate(math.log(self.mean) - sigma**2 / 2, sigma)
        return min(max(value, self.min), self.max)


class Scenario(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str = "adhoc"
    url: str = "ws://127.0.0.1:8080/stream/echo"
    duration: Positive = 10.0  # seconds of load; every call has ended by then (plus drain)
    calls: Count = 10  # long calls, each held from its start to the end of the run
    ramp: NonNegative = 50.0  # long calls started per second; 0 = all at once
    rate: int | list[int] = 16000  # Sinch sample rate; a list is cycled through call by call
    churn_rate: NonNegative = 0.0  # short calls started per second (Poisson arrivals), on top of `calls`
    churn_duration: DurationSpec = DurationSpec()
    media_hangup: Fraction = 0.0  # fraction of calls the media side ends (RTCP BYE), needs `media`
    media: Literal["none", "echo", "sink", "talker"] = "none"  # run this media simulator for the route
    media_listen: str = "127.0.0.1:40100"  # where it listens (HOST:PORT,HOST:PORT,... one each): the route's targets
    kill_target_at: NonNegative = 0.0  # seconds into the run: stop the first media target (0: never)
    restart_target_at: NonNegative = 0.0  # seconds into the run: start it again on its port (0: never)
    metrics_url: str = ""  # the gateway's /metrics: failovers are read from it at the start and the end
    procs: Annotated[int, msgspec.Meta(ge=1, le=64)] = 1  # load generator processes
    phases: Annotated[int, msgspec.Meta(ge=1, le=20)] = 4  # timer slots per 20 ms: calls spread over them
    seed: int = 1
    connect_timeout: Positive = 5.0  # upgrade + answer must arrive within this
    drain: NonNegative = 0.5  # after the caller stops talking, wait this long for its echo before closing
    gateway_pid: Count = 0  # 0 = no gateway CPU/RSS measurement
    progress_interval: Positive = 5.0
    thresholds: Thresholds = Thresholds()  # pass/fail criteria of the run (loadtest/shared/thresholds.py)

    def __post_init__(self) -> None:
        url = urlsplit(self.url)
        if url.scheme not in ("ws", "wss") or not url.hostname:
            raise ValueError(f"url: expected ws://HOST:PORT/stream/ROUTE, got {self.url!r}")
        for rate in self.rates:
            if rate not in SINCH_RATES:
                raise ValueError(f"rate: {rate} is not a Sinch rate {SINCH_RATES}")
        if not self.calls and not self.churn_rate:
            raise ValueError("calls: no load (calls = 0 and churn_rate = 0)")
        if self.media_hangup and self.media == "none":
            raise ValueError("media_hangup: needs a media simulator (media = echo|sink|talker) to send the BYE")
        self._check_outage(len(self.media_addresses))  # (parsed here: a bad address is refused before the run)
        self._check_thresholds_are_measured()

    def _check_outage(self, targets: int) -> None:
        if self.kill_target_at:
            if self.media == "none" or targets < 2:
                raise ValueError("kill_target_at: needs a media simulator with two targets or more "
                                 "(media = echo|sink|talker, media_listen = HOST:PORT,HOST:PORT)")
            if self.kill_target_at >= self.duration:
                raise ValueError(f"kill_target_at: {self.kill_target_at:g} s is not within the run's "
                                 f"duration ({self.duration:g} s)")
        if self.restart_target_at and not 0 < self.kill_target_at < self.restart_target_at:
            raise ValueError("restart_target_at: needs a kill_target_at before it")
        if self.metrics_url and urlsplit(self.metrics_url).scheme not in ("http", "https"):
            raise ValueError(f"metrics_url: expected http://HOST:PORT/metrics, got {self.metrics_url!r}")

    def _check_thresholds_are_measured(self) -> None:
        limits = self.thresholds
        needs = (
            ("max_cpu_per_call_ms", not self.gateway_pid, "gateway_pid (the gateway's CPU is measured from /proc)"),
            ("max_pss_per_call_kib", not self.gateway_pid, "gateway_pid (the gateway's memory is measured from /proc)"),
            ("max_upstream_p99_ms", self.media == "none", "a media simulator (media = echo|sink|talker)"),
            ("max_rtt_p99_ms", not self.expects_echo, "an echo route: a sink or talker returns none of our frames"),
            ("min_failovers", not self.metrics_url, "metrics_url (failovers are read from the gateway's /metrics)"),
        )
        for name, missing, what in needs:
            if getattr(limits, name) is not None and missing:
                raise ValueError(f"thresholds.{name}: needs {what}")

    @property
    def expects_echo(self) -> bool:
        """Whether each call's own frames come back (an echo route), so loss and round trip are measured
        per frame; a sink or talker sends back nothing of ours."""
        return self.media not in ("sink", "talker")

    @property
    def media_addresses(self) -> list[tuple[str, int]]:
        """One media simulator per address of `media_listen`, as the route lists its targets."""
        try:
            return [parse_host_port(part.strip()) for part in self.media_listen.split(",")]
        except ValueError as exc:
            raise ValueError(f"media_listen: {exc}") from None

    @property
    def rates(self) -> list[int]:
        return self.rate if isinstance(self.rate, list) else [self.rate]


class CallPlan(NamedTuple):
    index: int
    start: float  # seconds after the run's start
    seconds: float  # how long the caller talks
    rate: int
    media_hangup: bool  # the media simulator ends it (RTCP BYE) instead of the caller

    def call_id(self, run_id: str) -> str:
        """The Sinch CallId; a media-side hangup is requested in it, since the CNAME is all the media
        service learns about a call (README: RTP conventions)."""
        base = f"lt-{run_id}-{self.index}"
        return f"{base}~bye={round(self.seconds * 1000)}" if self.media_hangup else base


def load_scenario(path: str | None = None, overrides: Mapping[str, Any] | None = None) -> Scenario:
    """TOML file (optional) < flags that were given (not None); a table given as flags (`thresholds`,
    `churn_duration`) updates the file's table key by key."""
    try:
        data: dict[str, Any] = read_toml(path, "scenario") if path else {}
    except ConfigError as exc:
        raise ScenarioError(str(exc)) from None
    if "sample_rate" in data:  # the clearer name of `rate`
        if "rate" in data:
            raise ScenarioError("sample_rate: give `sample_rate` or `rate`, not both")
        data["rate"] = data.pop("sample_rate")
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **{k: v for k, v in value.items() if v is not None}}
        elif value is not None:
            data[key] = value
    try:
        return msgspec.convert(data, Scenario, strict=False)
    except (msgspec.ValidationError, ValueError) as exc:
        raise ScenarioError(name_the_key(exc)) from None


def plan_calls(scenario: Scenario) -> list[CallPlan]:
    """Every call of the run, ordered by start time."""
    rng = random.Random(scenario.seed)
    rates = scenario.rates
    starts: list[tuple[float, float]] = []
    for i in range(scenario.calls):
        start = i / scenario.ramp if scenario.ramp else 0.0
        starts.append((start, scenario.duration - start))
    if scenario.churn_rate:
        t = rng.expovariate(scenario.churn_rate)
        while t < scenario.duration:
            seconds = max(scenario.churn_duration.draw(rng), MIN_CALL_SECONDS)
            starts.append((t, min(seconds, scenario.duration - t)))
            t += rng.expovariate(scenario.churn_rate)
    starts = sorted((s, d) for s, d in starts if d >= MIN_CALL_SECONDS)
    return [
        CallPlan(i, start, seconds, rates[i % len(rates)], rng.random() < scenario.media_hangup)
        for i, (start, seconds) in enumerate(starts)
    ]


def new_run_id() -> str:
    """Short and unique per run, so call ids from several generators merged later never collide."""
    return secrets.token_hex(3)
