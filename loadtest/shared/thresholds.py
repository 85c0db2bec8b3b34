"""Pass/fail criteria of a run, in the spirit of k6's thresholds: each one bounds a figure of report.json. They
come from the scenario file's `[thresholds]` table or from flags (`--max-loss 0.01`); `python -m loadtest run`
prints which held and exits non-zero when any did not, so a run can gate a rollout.

A figure that was not measured (no gateway pid, a route that destroys the frame marker) does not hold: a
gate that cannot see its figure must not pass."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, NamedTuple

import msgspec

Fraction = Annotated[float, msgspec.Meta(ge=0, le=1)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]


def _at(*path: str) -> Callable[[dict[str, Any]], float | None]:
    def read(report: dict[str, Any]) -> float | None:
        value: Any = report
        for key in path:
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return value

    return read


def _share_of_attempted(key: str) -> Callable[[dict[str, Any]], float | None]:
    def read(report: dict[str, Any]) -> float | None:
        calls = report["calls"]
        return round(calls[key] / calls["attempted"], 6) if calls["attempted"] else None

    return read


def _kib(read: Callable[[dict[str, Any]], float | None]) -> Callable[[dict[str, Any]], float | None]:
    def in_kib(report: dict[str, Any]) -> float | None:
        value = read(report)
        return None if value is None else round(value / 1024, 1)

    return in_kib


class Threshold(NamedTuple):
    figure: Callable[[dict[str, Any]], float | None]  # the figure's value in a report, in the threshold's unit
    at_least: bool  # a lower bound (min_*) rather than an upper one (max_*)
    limit_type: Any  # validation of the limit
    meaning: str  # for --help and the README


THRESHOLDS: dict[str, Threshold] = {
    "max_loss": Threshold(_at("loss_ratio"), False, Fraction, "fraction of frames lost (0-1)"),
    "min_answered": Threshold(_share_of_attempted("answered"), True, Fraction,
                              "fraction of attempted calls answered (0-1)"),
    "max_failed": Threshold(_share_of_attempted("failed"), False, Fraction,
                            "fraction of attempted calls failed: not answered, or dropped after the answer (0-1)"),
    "max_setup_p99_ms": Threshold(_at("latency_ms", "setup", "p99"), False, NonNegative,
                                  "call setup (connect -> answer) p99, ms"),
    "max_rtt_p99_ms": Threshold(_at("latency_ms", "round_trip", "p99"), False, NonNegative,
                                "round trip p99, ms (an echo route)"),
    "max_upstream_p99_ms": Threshold(_at("latency_ms", "upstream", "p99"), False, NonNegative,
                                     "upstream (send -> RTP at the media simulator) p99, ms (needs media)"),
    "max_receive_gap_ms": Threshold(_at("receive_gap_ms", "max"), False, NonNegative,
                                    "longest time a call went without a frame from the gateway, ms"),
    "min_failovers": Threshold(_at("failover", "failovers"), True, NonNegative,
                               "calls the gateway moved to another target (needs metrics_url)"),
    "max_cpu_per_call_ms": Threshold(_at("gateway", "cpu_ms_per_call_second"), False, NonNegative,
                                     "gateway CPU ms per call-second (needs gateway_pid)"),
    "max_pss_per_call_kib": Threshold(_kib(_at("gateway", "pss_per_call_bytes")), False, NonNegative,
                                      "gateway PSS per call, KiB (needs gateway_pid)"),
}
# Without a min_answered of its own, a run in which no call was answered fails all the same.
ANY_ANSWERED = "any_answered"

Thresholds = msgspec.defstruct(
    "Thresholds", [(name, threshold.limit_type | None, None) for name, threshold in THRESHOLDS.items()],
    frozen=True, forbid_unknown_fields=True,
)


def judge(thresholds: Any, report: dict[str, Any]) -> list[dict[str, Any]]:
    """One verdict per threshold set: its bound, the run's value (None: not measured) and whether it held."""
    verdicts = []
    for name, threshold in THRESHOLDS.items():
        limit = getattr(thresholds, name)
        if limit is None:
            continue
        value = threshold.figure(report)
        held = value is not None and (value >= limit if threshold.at_least else value <= limit)
        verdicts.append({"name": name, "bound": ">=" if threshold.at_least else "<=", "limit": limit,
                         "value": value, "held": held})
    if thresholds.min_answered is None:
        answered = report["calls"]["answered"]
        verdicts.append({"name": ANY_ANSWERED, "bound": ">=", "limit": 1, "value": answered, "held": answered >= 1})
    return verdicts


def verdict_line(verdict: dict[str, Any]) -> str:
    value = "not measured" if verdict["value"] is None else verdict["value"]
    outcome = "held" if verdict["held"] else "FAILED"
    return f"threshold {verdict['name']} {verdict['bound']} {verdict['limit']}: {value} {outcome}"
