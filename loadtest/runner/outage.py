"""A media target's outage during a run (`kill_target_at`, `restart_target_at`): the first simulator is taken
down and brought back at its times into the run, and the gateway's failovers are read from its `/metrics`
before and after, for the report's `failover` section."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from loadtest.shared.exposition import counter_by, scrape
from loadtest.shared.procs import Child
from loadtest.shared.scenario import Scenario

FAILOVERS = "gateway_target_failovers"  # a counter by route and the target a call moved off
TARGET = 0  # the media target taken down: the first of media_listen


class TargetOutage:
    def __init__(self, scenario: Scenario, media: Child | None, t0: int, reply_timeout: float) -> None:
        self.scenario = scenario
        self.media = media
        self.t0 = t0
        self.reply_timeout = reply_timeout
        self.route = urlsplit(scenario.url).path.rsplit("/", 1)[-1]
        host, port = scenario.media_addresses[TARGET]
        self.target = f"{host}:{port}"
        self.steps = [(t0 + round(at * 1e9), action) for at, action in
                      ((scenario.kill_target_at, "down"), (scenario.restart_target_at, "up")) if at]
        self.done: dict[str, float] = {}  # action -> seconds into the run when the simulator confirmed it
        self.failovers_before = self._failovers()

    @property
    def next_ns(self) -> int | None:
        return self.steps[0][0] if self.steps else None

    def run_due(self, now: int) -> None:
        while self.steps and self.steps[0][0] <= now and self.media is not None:
            _, action = self.steps.pop(0)
            self.media.conn.send((action, TARGET))
            at = self.media.expect(action, self.reply_timeout)[1]
            self.done[action] = round((at - self.t0) / 1e9, 3)

    def summary(self, notes: list[str]) -> dict[str, Any] | None:
        """The report's `failover` section (None: the scenario has no outage and reads no failovers)."""
        if not self.scenario.kill_target_at and not self.scenario.metrics_url:
            return None
        try:
            after = self._failovers()
        except OSError as exc:  # the gateway is gone or its metrics port is: the rest of the report stands
            notes.append(f"failovers not read from {self.scenario.metrics_url}: {exc}")
            after = None
        by_target = None if after is None or self.failovers_before is None else {
            target: round(count - self.failovers_before.get(target, 0)) for target, count in after.items()}
        return {"route": self.route, "target": self.target if self.scenario.kill_target_at else None,
                "stopped_at_s": self.done.get("down"), "restarted_at_s": self.done.get("up"),
                "failovers": None if by_target is None else sum(by_target.values()),
                "failovers_by_target": by_target}

    def _failovers(self) -> dict[str, float] | None:
        if not self.scenario.metrics_url:
            return None
        return counter_by(scrape(self.scenario.metrics_url), FAILOVERS, "target", route=self.route)
