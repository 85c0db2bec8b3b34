"""The process you start: binds the listeners, forks the workers and the control process, restarts what
dies, drains on SIGTERM, rolls workers on SIGHUP. It imports nothing of the media path: workers and the
control process are named as `module:function` targets and imported only in the child after fork.

Habits from gunicorn's arbiter: signal handlers only enqueue (and wake the loop through a pipe); a
`waitpid(-1, WNOHANG)` reap loop; heartbeats written by each worker's own event loop; a boot-failure exit
code that stops a crash loop; a graceful deadline, then SIGKILL. From uvicorn's: each signal is dispatched to
its handle_<signal> method.

The Supervisor holds what its decisions share (the configuration, the worker target, the gateway's state) and
its loop; each mechanism is a collaborator with one job: Listeners (the sockets bound at start), Spawner
(forking a child), SignalQueue, ChildTable (the children, what is asked of them and told them), Workers and
ControlProcess (keeping each kind running, each with its RestartPolicy: when to replace a child that died, and
when to stop trying), Roll (SIGHUP's roll from one generation of workers to the next), MetricsDir.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from types import ModuleType

from gateway.process.children import Child, ChildTable
from gateway.process.control_process import ControlProcess
from gateway.process.fork import Spawner
from gateway.process.listeners import Listeners
from gateway.process.metrics_dir import MetricsDir
from gateway.process.roll import Roll, reloaded_target
from gateway.process.signals import SignalQueue
from gateway.process.systemd_notify import SystemdNotifier
from gateway.process.workers import Workers, restart_reason
from gateway.shared import host_limits
from gateway.shared.build import data_plane
from gateway.shared.config import Config, ConfigError
from gateway.shared.exit_codes import EXIT_BOOT_FAILURE
from gateway.shared.logs import log_event
from gateway.shared.replay import ReplayGuard
from gateway.shared.scoreboard import GatewayState, Scoreboard

log = logging.getLogger("gateway.supervisor")

LOOP_INTERVAL = 0.25
CLOSE_GRACE = 5.0  # after the drain deadline, for workers to close calls and exit
FAST_STOP_GRACE = 5.0


class Supervisor:
    metrics: ModuleType  # gateway.shared.metrics, imported by run() once PROMETHEUS_MULTIPROC_DIR is set
    spawner: Spawner  # made by run(), once the listeners are bound

    def __init__(self, config: Config, reload: Callable[[], Config] | None = None) -> None:
        self.config = config
        self.reload = reload  # reads the configuration again on SIGHUP
        self.target_workers = config.worker_count
        self.scoreboard = Scoreboard()
        self.replay_guard = ReplayGuard()
        self.children = ChildTable(self.scoreboard)
        self.signals = SignalQueue()
        self.state = GatewayState.BOOTING
        self.stopping_deadline: float | None = None
        self.workers = Workers(self.children, spawn=lambda: self._spawn("worker"))
        self.control = ControlProcess(self.children, spawn=lambda: self._spawn("control"))
        self.roll = Roll(self.children)
        self.exit_code = 0
        self.metrics_dir = MetricsDir()
        self.notifier = SystemdNotifier()
        self.ready_to_notify = True  # READY=1 is due once the workers serve (at start, after a reload)

    # ---- start and run ---------------------------------------------------------------------------------

    def run(self) -> int:
        open_files = host_limits.raise_open_files_limit()
        removed = self.metrics_dir.prepare()
        if removed:
            log_event(log, logging.INFO, "supervisor.stale_metrics_removed", directories=removed)
        try:
            return self._run(open_files)
        finally:
            self.metrics_dir.cleanup()  # whichever way the run ends, a failed start included

    def _run(self, open_files: host_limits.OpenFiles) -> int:
        _report_host_limits(self.config, open_files)
        try:
            listeners = Listeners.bind(self.config, self.target_workers)
        except OSError as exc:
            log_event(log, logging.ERROR, "supervisor.bind_failed", error=exc.strerror, listen=self.config.listen,
                      metrics_listen=self.config.metrics_listen, callback_listen=self.config.callback_listen)
            print(f"gateway: cannot listen: {exc.strerror}", file=sys.stderr)
            return EXIT_BOOT_FAILURE
        from gateway.shared import metrics  # only now: MetricsDir.prepare() has set PROMETHEUS_MULTIPROC_DIR

        self.metrics = metrics
        metrics.create_supervisor_series()
        self.spawner = Spawner(listeners, self.scoreboard, self.replay_guard, self.signals)
        self.signals.install()
        self._spawn("control")
        for _ in range(self.target_workers):
            self._spawn("worker")
        self._publish_state(GatewayState.RUNNING)
        _report_started(self.config, self.target_workers)
        try:
            self._supervise()
        finally:
            self._kill_all()
        log_event(log, logging.INFO, "supervisor.stopped", exit_code=self.exit_code)
        return self.exit_code

    def _supervise(self) -> None:
        while self.children or self.state is not GatewayState.DRAINING:
            self._wait()
            self.handle_signals()
            self._reap()
            if self.exit_code == EXIT_BOOT_FAILURE:
                return
            self._check_heartbeats()
            self._maintain()

    def _wait(self) -> None:
        self.signals.wait(LOOP_INTERVAL)
        if self.stopping_deadline is not None and time.monotonic() > self.stopping_deadline:
            log_event(log, logging.WARNING, "supervisor.deadline_passed", children=len(self.children))
            self._kill_all()
            self.stopping_deadline = None

    # ---- children --------------------------------------------------------------------------------------

    def _spawn(self, kind: str, listener: int | None = None) -> None:
        """Start a worker (on `listener`, else on the one the fewest active workers accept on) or the control
        process."""
        if kind == "worker":
            if listener is None:
                listener = self.children.free_listener(len(self.spawner.listeners.workers))
            slot = self.scoreboard.free_slot()
            pid = self.spawner.worker(self.config, listener, slot)
            self.scoreboard.assign(slot, pid)
        else:
            listener, slot = -1, -1
            pid = self.spawner.control(self.config)
        self.children[pid] = Child(pid=pid, kind=kind, listener=listener, slot=slot)
        self._publish_workers()
        log_event(log, logging.INFO, "supervisor.spawned", kind=kind, child_pid=pid, slot=slot, listener=listener)

    def _reap(self) -> None:
        for child, code in self.children.reaped():
            self._child_exited(child, code)

    def _child_exited(self, child: Child, code: int) -> None:
        served = self.children.served(child)  # read before its scoreboard slot is freed
        self.metrics_dir.mark_dead(child.pid)
        self.children.free_slot(child)
        self._publish_workers()
        expected = child.retiring or self.state is GatewayState.DRAINING
        log_event(log, logging.INFO if expected else logging.ERROR, "supervisor.child_exited", kind=child.kind,
                  child_pid=child.pid, exit_code=code, expected=expected)
        if expected:
            return
        if child.kind == "control":
            self._control_exited(child, code)
        else:
            self._worker_exited(child, code, served)

    def _worker_exited(self, child: Child, code: int, served: bool) -> None:
        """_maintain replaces the worker once the backoff has passed, unless workers cannot boot."""
        cannot_boot = self.workers.exited(code, served, time.monotonic())
        if cannot_boot and self._given_up_booting(child, code):
            return
        self.metrics.WORKER_RESTARTS.labels(restart_reason(child, served, code)).inc()

    def _given_up_booting(self, child: Child, code: int) -> bool:
        """Workers cannot boot: give up the reload in progress, or stop the gateway if no worker carries calls
        (returns True), or else go on trying."""
        if self.roll.in_progress:
            self._abandon_roll(code)  # the old generation still serves: give up the reload, not the calls
            return True
        if not self.children.carry_calls():
            self._stop_for_boot_failure(child, code)
            return True
        # Other workers carry calls: halting would drop them. Keep trying, ever slower, and loudly.
        log_event(log, logging.ERROR, "supervisor.replacement_failing", boot_failures=self.workers.restarts.failures,
                  exit_code=code)
        return False

    def _control_exited(self, child: Child, code: int) -> None:
        if self.control.exited(child, time.monotonic()):
            self._stop_for_boot_failure(child, code)
        else:
            self.metrics.CONTROL_RESTARTS.inc()  # _maintain replaces it once the backoff passes

    def _stop_for_boot_failure(self, child: Child, code: int) -> None:
        name = "the control process" if child.kind == "control" else "a worker"
        print(f"gateway: {name} could not boot (exit {code}); stopping, see the log above", file=sys.stderr)
        self.exit_code = EXIT_BOOT_FAILURE

    def _check_heartbeats(self) -> None:
        self.workers.check_heartbeats(time.monotonic(), self.config.worker_timeout)

    def _maintain(self) -> None:
        """Keep the control process and the number of serving workers at the target; retire an old generation
        once the new one serves. While draining, stop the control process (the metrics) once the last worker
        is gone."""
        if self.state is GatewayState.DRAINING:
            if not self.children.workers():
                self.children.signal_all(signal.SIGTERM)
        elif self.state is GatewayState.RUNNING:
            now = time.monotonic()
            active = self.children.active("worker")
            self.control.keep(now)
            self.workers.keep(active, self.target_workers, now)
            if self.roll.ready(active, self.target_workers):
                self._finish_roll(len(active))
            self._notify_ready(active)

    def _notify_ready(self, active: list[Child]) -> None:
        """READY=1 to systemd once as many workers as the target serve, with no roll in progress."""
        if (self.ready_to_notify and not self.roll.in_progress and len(active) >= self.target_workers
                and all(child.served for child in active)):
            self.ready_to_notify = False
            self.notifier.ready(f"{len(active)} workers serving")

    def _kill_all(self) -> None:
        self.children.signal_all(signal.SIGKILL)
        self.children.reap_all()

    # ---- signals: handle_<name> for each of signals.HANDLED_SIGNALS -------------------------------------

    def handle_signals(self) -> None:
        for signum in self.signals.take():
            name = signal.Signals(signum).name
            log_event(log, logging.INFO, "supervisor.signal", signal=name)
            getattr(self, f"handle_{name.lower()}")()

    def handle_sigterm(self) -> None:
        self._stop(signal.SIGTERM, self.config.drain_timeout + CLOSE_GRACE)

    def handle_sigint(self) -> None:
        self._stop(signal.SIGINT, FAST_STOP_GRACE)

    def handle_sighup(self) -> None:
        if self.state is GatewayState.RUNNING:
            self.notifier.reloading()
            self.ready_to_notify = True  # whether the roll applies or not, the workers then serve
            self._roll()

    def handle_sigusr2(self) -> None:
        """Leave: /readyz answers 503 so load balancers stop sending new calls, while the workers go on taking
        those still sent; the SIGTERM that follows drains (a Kubernetes preStop hook: deploy/kubernetes)."""
        if self.state is GatewayState.RUNNING:
            self.scoreboard.gateway_state = GatewayState.LEAVING

    def handle_sigttin(self) -> None:
        if self.state is GatewayState.RUNNING:
            self.target_workers += 1

    def handle_sigttou(self) -> None:
        if self.state is not GatewayState.RUNNING:
            return
        if self.config.accept == "reuseport":
            # A listener's SO_REUSEPORT socket keeps getting connections while open in any process.
            log_event(log, logging.WARNING, "supervisor.scale_down_refused",
                      reason="accept=reuseport: restart with fewer workers instead")
            return
        self.target_workers = max(1, self.target_workers - 1)

    def _stop(self, signum: int, grace: float) -> None:
        """Drain: workers decline new calls (503) and finish theirs; the control process goes last."""
        if self.state is not GatewayState.DRAINING:
            self.notifier.stopping()
            self._publish_state(GatewayState.DRAINING)
        deadline = time.monotonic() + grace
        if self.stopping_deadline is None or deadline < self.stopping_deadline:
            self.stopping_deadline = deadline
        self.children.signal_all(signum, kind="worker")

    # ---- reload: the roll of generations ---------------------------------------------------------------

    def _roll(self) -> None:
        """SIGHUP: read the configuration again and start a new generation of workers with it (Roll). The control
        process (which signs stream tokens and answers ICE with routes) is replaced once the new generation
        serves, so it never runs ahead of the workers. An invalid configuration is refused with a log line, and
        nothing changes."""
        config = self._reloaded_config()
        if config is None:
            return
        if not self.roll.in_progress:
            self.workers.restarts.reset()  # failures of the code being replaced must not count against the new one
        replaced = self.roll.begin(self.config, self.target_workers)
        self.target_workers, needs_restart = reloaded_target(self.config, config, self.target_workers)
        if needs_restart:
            log_event(log, logging.WARNING, "supervisor.reload_needs_restart", keys=needs_restart)
        self.config = config
        for child in replaced:
            self._spawn("worker", listener=child.listener)

    def _reloaded_config(self) -> Config | None:
        if self.reload is None:
            return self.config
        try:
            return self.reload()
        except ConfigError as exc:
            self.metrics.RELOADS.labels("refused").inc()
            log_event(log, logging.ERROR, "supervisor.reload_refused", error=str(exc))
            return None

    def _finish_roll(self, workers: int) -> None:
        self.roll.finish()
        self.control.replace()
        self.metrics.RELOADS.labels("applied").inc()
        log_event(log, logging.INFO, "supervisor.reload_applied", workers=workers)

    def _abandon_roll(self, code: int) -> None:
        """The new generation cannot boot: the old one goes on with what it was started with (Roll.abandon)."""
        kept, self.config, self.target_workers = self.roll.abandon(self.config, self.target_workers)
        self.workers.restarts.reset()
        self.metrics.RELOADS.labels("failed").inc()
        log_event(log, logging.ERROR, "supervisor.reload_failed", exit_code=code, workers_kept=kept,
                  reason="the new workers could not boot; see child.crashed or worker.boot_failed above")

    # ---- published state -------------------------------------------------------------------------------

    def _publish_state(self, state: GatewayState) -> None:
        self.state = state
        self.scoreboard.gateway_state = state
        self.metrics.DRAINING.set(1 if state is GatewayState.DRAINING else 0)

    def _publish_workers(self) -> None:
        self.metrics.WORKERS.set(len(self.children.workers()))


def _report_host_limits(config: Config, open_files: host_limits.OpenFiles) -> None:
    """Log the open-files limit the gateway runs with and the capacity the host allows; warn, with the fix,
    about each host limit that cuts what the configuration asks (the kernel cuts silently)."""
    limits = host_limits.read_host_limits(config, (open_files.soft, open_files.hard))
    log_event(log, logging.INFO, "supervisor.host_limits", open_files=open_files.soft,
              open_files_hard=open_files.hard, open_files_raised_from=open_files.soft_before,
              capacity=limits.verdict)
    for warning in limits.warnings:
        log_event(log, logging.WARNING, "supervisor.host_limit", limit=warning.limit, message=warning.message,
                  fix=warning.fix)


def _report_started(config: Config, workers: int) -> None:
    plane = data_plane()
    log_event(log, logging.INFO, "supervisor.started", workers=workers, listen=config.listen,
              metrics_listen=config.metrics_listen, accept=config.accept, data_plane=plane)
    if plane != "compiled" and not os.environ.get("GATEWAY_NO_EXTENSIONS"):
        log_event(log, logging.WARNING, "supervisor.python_data_plane",
                  reason="the compiled data plane is not built (no C compiler at install?): the Python one runs, "
                         "at several times the CPU per call; reinstall with a compiler to build it")
