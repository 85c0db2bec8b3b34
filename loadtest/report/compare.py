"""`python -m loadtest compare A B`: the change of every figure from report A (the baseline) to report B. A
figure that has a better direction (latency, loss and failures lower; answered calls higher) and moved the
wrong way by more than the tolerance is flagged as a regression; the others are shown for information."""

from __future__ import annotations

import math
from fnmatch import fnmatchcase
from typing import Any, NamedTuple

# Not figures of the run: its definition, its per-second rows, raw histograms, verdicts, identities, and the
# media's latency sections (the same as latency_ms.upstream and jitter_ms.upstream).
SKIPPED = {"scenario", "timeline", "histogram", "thresholds", "runs", "notes", "warnings", "machines",
           "unclean_streams", "pid", "port", "upstream_ms", "upstream_jitter_ms", "steady_window_s"}
LOWER_IS_BETTER, NEUTRAL, HIGHER_IS_BETTER = -1, 0, 1
# First match wins.
DIRECTIONS = (
    ("*.count", NEUTRAL),  # samples taken, not a quality
    ("latency_ms.*", LOWER_IS_BETTER), ("jitter_ms.*", LOWER_IS_BETTER), ("generator.tick_lag_ms.*", LOWER_IS_BETTER),
    ("receive_gap_ms.*", LOWER_IS_BETTER), ("loss_ratio", LOWER_IS_BETTER), ("calls.failed", LOWER_IS_BETTER),
    ("calls.failed_by_reason.*", LOWER_IS_BETTER),
    ("calls.answered", HIGHER_IS_BETTER), ("calls.completed", HIGHER_IS_BETTER),
    ("frames.lost", LOWER_IS_BETTER), ("frames.duplicate", LOWER_IS_BETTER), ("frames.reordered", LOWER_IS_BETTER),
    ("frames.crossed", LOWER_IS_BETTER), ("frames.skipped", LOWER_IS_BETTER),
    ("gateway.cpu_ms_per_call_second*", LOWER_IS_BETTER), ("gateway.*_per_call_bytes", LOWER_IS_BETTER),
    ("gateway_own.*", LOWER_IS_BETTER), ("media_hangup_missed", LOWER_IS_BETTER),
    ("media.lost", LOWER_IS_BETTER), ("media.gaps", LOWER_IS_BETTER), ("media.duplicates", LOWER_IS_BETTER),
    ("media.reordered", LOWER_IS_BETTER), ("media.timestamp_errors", LOWER_IS_BETTER),
    ("media.malformed", LOWER_IS_BETTER),
)


class Change(NamedTuple):
    figure: str  # dotted path in report.json
    before: float | None
    after: float | None
    relative: float | None  # (after - before) / before; inf from zero; None when either is missing
    regression: bool


def figures(report: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Every numeric figure of a report by its dotted path."""
    found: dict[str, float] = {}
    for key, value in report.items():
        if key in SKIPPED:
            continue
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            found.update(figures(value, path + "."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            found[path] = value
    return found


def direction(figure: str) -> int:
    return next((better for pattern, better in DIRECTIONS if fnmatchcase(figure, pattern)), NEUTRAL)


def compare(before: dict[str, Any], after: dict[str, Any], tolerance: float) -> list[Change]:
    old, new = figures(before), figures(after)
    changes = []
    for figure in sorted(old.keys() | new.keys()):
        a, b = old.get(figure), new.get(figure)
        relative = None
        if a is not None and b is not None:
            relative = (b - a) / abs(a) if a else (0.0 if b == a else math.copysign(math.inf, b))
        worse = relative is not None and -direction(figure) * relative > tolerance
        changes.append(Change(figure, a, b, relative, worse))
    return changes


def render(changes: list[Change], tolerance: float) -> str:
    width = max((len(change.figure) for change in changes), default=6)
    lines = [f"{'figure':{width}}  {'A':>12}  {'B':>12}  {'change':>9}"]
    for change in changes:
        lines.append(f"{change.figure:{width}}  {_cell(change.before):>12}  {_cell(change.after):>12}  "
                     f"{_percent(change.relative):>9}{'  REGRESSION' if change.regression else ''}")
    regressions = sum(change.regression for change in changes)
    lines.append(f"\n{regressions} regression(s) past a tolerance of {tolerance:.0%}")
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    if value is None:
        return "missing"
    return str(value) if isinstance(value, int) else f"{value:.6g}"


def _percent(relative: float | None) -> str:
    if relative is None:
        return ""
    return f"{relative:+.1%}" if math.isfinite(relative) else ("+inf" if relative > 0 else "-inf")
