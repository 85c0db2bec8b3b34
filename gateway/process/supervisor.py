"""The process you start: binds the listeners, forks the workers and the control process, restarts what
dies, drains on SIGTERM, rolls workers on SIGHUP. It imports nothing of the media path: workers and the
control process are named as `module:function` targets and imported only in the child after fork.

Habits from gunicorn's arbiter: signal handlers only enqueue (and wake the loop through a pipe); a
`waitpid(-1, WNOHANG)` reap loop; heartbeats written by each worker's own event loop; a boot-failure exit
code that stops a crash loop; a graceful deadline, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import logging
import os
import select
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.process.metrics_dir import MetricsDir
from gateway.shared import host_limits
from gateway.shared.build import data_plane
from gateway.shared.config import Config, ConfigError
from gateway.shared.exit_codes import EXIT_BOOT_FAILURE
from gateway.shared.logs import log_event
from gateway.shared.replay import ReplayGuard
from gateway.shared.scoreboard import GatewayState, Scoreboard, WorkerState

log = logging.getLogger("gateway.supervisor")

WORKER_TARGET = "gateway.dataplane.worker:run_worker"
CONTROL_TARGET = "gateway.control.app:run_control"
MAX_BOOT_FAILURES = 3  # consecutive children that die before serving: stop instead of crash-looping
BACKOFF_START = 0.1
BACKOFF_MAX = 10.0
STABLE_AFTER = 10.0  # a worker serving this long resets the backoff
LOOP_INTERVAL = 0.25
CLOSE_GRACE = 5.0  # after the drain deadline, for workers to close calls and exit
FAST_STOP_GRACE = 5.0
PR_SET_PDEATHSIG = 1
# Listening sockets are bound once, by the supervisor: these keys take effect only on a restart.
BOUND_AT_START = ("listen", "metrics_listen", "callback_listen", "accept")
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGCHLD)


@dataclass
class Child:
    pid: int
    kind: str  # "worker" or "control"
    seat: int = -1  # workers: which listener seat (reuseport) / position it fills
    slot: int = -1  # workers: scoreboard slot
    started: float = field(default_factory=time.monotonic)
    retiring: bool = False
    served: bool = False
    stuck: bool = False


class Supervisor:
    def __init__(self, config: Config, reload: Callable[[], Config] | None = None) -> None:
        self.config = config
        self.reload = reload  # reads the configuration again on SIGHUP
        self.target_workers = config.worker_count
        self.scoreboard = Scoreboard()
        self.replay_guard = ReplayGuard()
        self.children: dict[int, Child] = {}
        self.signals: deque[int] = deque()
        self.listeners: list[socket.socket] = []
        self.metrics_socket: socket.socket | None = None
        self.callback_socket: socket.socket | None = None
        self.state = GatewayState.BOOTING
        self.stopping_deadline: float | None = None
        self.boot_failures = 0
        self.last_failure_at = 0.0
        self.backoff_until = 0.0
        self.control_failures = 0  # consecutive control processes that died young
        self.control_proven = False  # a control process has run for STABLE_AFTER: later failures only back off
        self.control_backoff_until = 0.0
        self.exit_code = 0
        self.rolling: list[Child] = []
        self.before_roll: tuple[Config, int] | None = None  # what the old generation runs with, during a roll
        self.stop_signal = signal.SIGTERM
        self._wakeup_r, self._wakeup_w = os.pipe()
        self.metrics_dir = MetricsDir()

    # ---- start -----------------------------------------------------------------------------------------

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
        self._report_host_limits(open_files)
        try:
            self._bind()
        except OSError as exc:
            log_event(log, logging.ERROR, "supervisor.bind_failed", error=exc.strerror, listen=self.config.listen,
                      metrics_listen=self.config.metrics_listen, callback_listen=self.config.callback_listen)
            print(f"gateway: cannot listen: {exc.strerror}", file=sys.stderr)
            return EXIT_BOOT_FAILURE
        from gateway.shared import metrics  # after PROMETHEUS_MULTIPROC_DIR is set

        self.metrics = metrics
        metrics.create_supervisor_series()
        self._install_signals()
        self._spawn("control")
        for _ in range(self.target_workers):
            self._spawn("worker")
        self._publish_state(GatewayState.RUNNING)
        plane = data_plane()
        log_event(log, logging.INFO, "supervisor.started", workers=self.target_workers, listen=self.config.listen,
                  metrics_listen=self.config.metrics_listen, accept=self.config.accept, data_plane=plane)
        if plane != "compiled" and not os.environ.get("GATEWAY_NO_EXTENSIONS"):
            log_event(log, logging.WARNING, "supervisor.python_data_plane",
                      reason="the compiled data plane is not built (no C compiler at install?): the Python one runs, "
                             "at several times the CPU per call; reinstall with a compiler to build it")
        try:
            while self.children or self.state is not GatewayState.DRAINING:
                self._wait()
                self._handle_signals()
                self._reap()
                if self.exit_code == EXIT_BOOT_FAILURE:
                    break
                self._check_heartbeats()
                self._maintain()
        finally:
            self._kill_all(signal.SIGKILL)
        log_event(log, logging.INFO, "supervisor.stopped", exit_code=self.exit_code)
        return self.exit_code

    def _report_host_limits(self, open_files: host_limits.OpenFiles) -> None:
        """Log the open-files limit the gateway runs with and the capacity the host allows; warn, with the fix,
        about each host limit that cuts what the configuration asks (the kernel cuts silently)."""
        limits = host_limits.read_host_limits(self.config, (open_files.soft, open_files.hard))
        log_event(log, logging.INFO, "supervisor.host_limits", open_files=open_files.soft,
                  open_files_hard=open_files.hard, open_files_raised_from=open_files.soft_before,
                  capacity=limits.verdict)
        for warning in limits.warnings:
            log_event(log, logging.WARNING, "supervisor.host_limit", limit=warning.limit, message=warning.message,
                      fix=warning.fix)

    def _bind(self) -> None:
        host, port = self.config.listen_address
        if self.config.accept == "shared":
            self.listeners = [_listen_socket("listen", host, port, reuse_port=False)]
        else:
            first = _listen_socket("listen", host, port, reuse_port=True)
            port = first.getsockname()[1]  # an ephemeral port (0) must be the same for every seat
            self.listeners = [first] + [
                _listen_socket("listen", host, port, reuse_port=True) for _ in range(self.target_workers - 1)
            ]
        self.metrics_socket = _listen_socket("metrics_listen", *self.config.metrics_address, reuse_port=False)
        self.callback_socket = _listen_socket("callback_listen", *self.config.callback_address, reuse_port=False)

    def _install_signals(self) -> None:
        os.set_blocking(self._wakeup_w, False)
        signal.set_wakeup_fd(self._wakeup_w)
        for signum in HANDLED_SIGNALS:
            signal.signal(signum, self._enqueue)

    def _enqueue(self, signum: int, _frame: object) -> None:
        self.signals.append(signum)  # only enqueue: the loop does the work (async-signal safety)

    # ---- children --------------------------------------------------------------------------------------

    def _spawn(self, kind: str, seat: int | None = None) -> None:
        slot = -1
        if kind == "worker":
            seat = self._free_seat() if seat is None else seat
            slot = self.scoreboard.free_slot()
        pid = os.fork()
        if pid == 0:
            self._become_child(kind, seat if seat is not None else -1, slot)
        child = Child(pid=pid, kind=kind, seat=seat if seat is not None else -1, slot=slot)
        if kind == "worker":
            self.scoreboard.assign(slot, pid)
        self.children[pid] = child
        self._publish_workers()
        log_event(log, logging.INFO, "supervisor.spawned", kind=kind, child_pid=pid, slot=slot, seat=child.seat)

    def _become_child(self, kind: str, seat: int, slot: int) -> None:
        code = 1
        try:
            for signum in HANDLED_SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            signal.set_wakeup_fd(-1)
            os.close(self._wakeup_r)
            os.close(self._wakeup_w)
            _die_with_parent()
            if kind == "worker":
                sock = self.listeners[seat % len(self.listeners)]
                self._keep_only(sock)
                target = _load(WORKER_TARGET)
                code = target(self.config, sock, slot, self.scoreboard, self.replay_guard)
            else:
                self._keep_only(self.metrics_socket, self.callback_socket)
                target = _load(CONTROL_TARGET)
                code = target(self.config, self.metrics_socket, self.callback_socket, self.scoreboard,
                              self.replay_guard)
        except BaseException:
            logging.getLogger("gateway.child").exception("child.crashed")
        finally:
            os._exit(code)

    def _keep_only(self, *served: socket.socket) -> None:
        """In a child: close the listening sockets it inherited but does not serve. A port is free again only
        once every process holding its socket has closed it, so a worker that outlives a killed supervisor must
        hold its own listener alone (and closes it at once: gateway.dataplane.worker)."""
        for sock in (*self.listeners, self.metrics_socket, self.callback_socket):
            if sock not in served:
                sock.close()

    def _free_seat(self) -> int:
        taken = {c.seat for c in self.children.values() if c.kind == "worker" and not c.retiring}
        return next(seat for seat in range(len(self.children) + 1) if seat not in taken)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is None:
                continue
            self._child_exited(child, os.waitstatus_to_exitcode(status))

    def _child_exited(self, child: Child, code: int) -> None:
        self.metrics_mark_dead(child.pid)
        served = child.served or (child.kind == "worker" and self._has_served(child))
        if child.slot >= 0:
            self.scoreboard.clear(child.slot)
        self._publish_workers()
        expected = child.retiring or self.state is GatewayState.DRAINING
        log_event(log, logging.INFO if expected else logging.ERROR, "supervisor.child_exited", kind=child.kind,
                  child_pid=child.pid, exit_code=code, expected=expected)
        if expected:
            return
        if child.kind == "control":
            self._control_exited(child, code)
            return
        self.last_failure_at = time.monotonic()
        if child.kind == "worker" and not served:
            self.boot_failures += 1
        if code == EXIT_BOOT_FAILURE or self.boot_failures >= MAX_BOOT_FAILURES:
            if self.rolling:
                self._abandon_roll(code)  # the old generation still serves: give up the reload, not the calls
                return
            if not any(c.kind == "worker" and c.served and not c.retiring for c in self.children.values()):
                print(f"gateway: a {child.kind} could not boot (exit {code}); stopping, see the log above",
                      file=sys.stderr)
                self.exit_code = EXIT_BOOT_FAILURE
                return
            # Other workers carry calls: halting would drop them. Keep trying, ever slower, and loudly.
            log_event(log, logging.ERROR, "supervisor.replacement_failing", boot_failures=self.boot_failures,
                      exit_code=code)
        # A worker that never served carried no call: counted apart, so a restart alert means lost calls.
        reason = "stuck" if child.stuck else "boot_failed" if not served else "killed" if code < 0 else "exited"
        self.metrics.WORKER_RESTARTS.labels(reason).inc()
        self.backoff_until = self.last_failure_at + _backoff(self.boot_failures)  # _maintain replaces the worker

    def _control_exited(self, child: Child, code: int) -> None:
        """A control process that cannot boot at start stops the gateway, as a worker would. Once one has run,
        calls in progress do not depend on it, so it never stops the gateway again: it is replaced with a
        backoff of its own, which grows while replacements die young."""
        now = time.monotonic()
        young = now - child.started < STABLE_AFTER
        self.control_proven = self.control_proven or not young
        self.control_failures = self.control_failures + 1 if young else 1
        if not self.control_proven and self.control_failures >= MAX_BOOT_FAILURES:
            print(f"gateway: the control process could not boot (exit {code}); stopping, see the log above",
                  file=sys.stderr)
            self.exit_code = EXIT_BOOT_FAILURE
            return
        self.control_backoff_until = now + _backoff(self.control_failures - 1)
        self.metrics.CONTROL_RESTARTS.inc()

    def metrics_mark_dead(self, pid: int) -> None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, self.metrics_dir.path)

    def _has_served(self, child: Child) -> bool:
        pid, state, _ = self.scoreboard.read(child.slot)
        return pid == child.pid and state in (WorkerState.SERVING, WorkerState.DRAINING)

    def _check_heartbeats(self) -> None:
        now = time.monotonic()
        for child in list(self.children.values()):
            if child.kind != "worker":
                continue
            pid, state, beat = self.scoreboard.read(child.slot)
            if state is WorkerState.SERVING and not child.served:
                child.served = True
            if child.served and now - child.started > STABLE_AFTER and child.started > self.last_failure_at:
                self.boot_failures = 0  # a worker started since the last failure has proven itself
            limit = self.config.worker_timeout if child.served else self.config.worker_timeout * 3
            if pid == child.pid and now - beat > limit and not child.stuck:
                log_event(log, logging.ERROR, "supervisor.worker_stuck", child_pid=child.pid,
                          seconds_since_heartbeat=round(now - beat, 1))
                child.stuck = True
                _signal(child.pid, signal.SIGKILL)

    def _maintain(self) -> None:
        """Keep the number of serving workers at the target; retire an old generation once the new one serves.
        While draining, stop the control process (the metrics) once the last worker is gone."""
        if self.state is GatewayState.DRAINING:
            if not any(c.kind == "worker" for c in self.children.values()):
                for child in self.children.values():
                    _signal(child.pid, signal.SIGTERM)
            return
        if self.state is not GatewayState.RUNNING:
            return
        workers = [c for c in self.children.values() if c.kind == "worker"]
        active = [c for c in workers if not c.retiring]
        now = time.monotonic()
        control_due = now >= self.control_backoff_until
        if control_due and not any(c.kind == "control" and not c.retiring for c in self.children.values()):
            self._spawn("control")
        backed_off = now >= self.backoff_until
        if len(active) < self.target_workers and backed_off:
            self._spawn("worker")
        elif len(active) > self.target_workers:
            newest = max(active, key=lambda c: c.started)
            self._retire(newest)
        if self.rolling and len(active) >= self.target_workers and all(c.served for c in active):
            for child in self.rolling:
                self._retire(child)
            self.rolling = []
            self.before_roll = None
            self._replace_control()
            self.metrics.RELOADS.labels("applied").inc()
            log_event(log, logging.INFO, "supervisor.reload_applied", workers=len(active))
        if not self.control_proven and any(c.kind == "control" and now - c.started >= STABLE_AFTER
                                           for c in self.children.values()):
            self.control_proven = True

    def _replace_control(self) -> None:
        for child in [c for c in self.children.values() if c.kind == "control" and not c.retiring]:
            self._spawn("control")
            child.retiring = True
            _signal(child.pid, signal.SIGTERM)

    def _retire(self, child: Child) -> None:
        child.retiring = True
        _signal(child.pid, signal.SIGUSR1)
        log_event(log, logging.INFO, "supervisor.retiring", child_pid=child.pid)

    # ---- signals ---------------------------------------------------------------------------------------

    def _wait(self) -> None:
        with contextlib.suppress(InterruptedError):
            ready, _, _ = select.select([self._wakeup_r], [], [], LOOP_INTERVAL)
            if ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wakeup_r, 4096)
        if self.stopping_deadline is not None and time.monotonic() > self.stopping_deadline:
            log_event(log, logging.WARNING, "supervisor.deadline_passed", children=len(self.children))
            self._kill_all(signal.SIGKILL)
            self.stopping_deadline = None

    def _handle_signals(self) -> None:
        while self.signals:
            signum = self.signals.popleft()
            if signum == signal.SIGCHLD:
                continue  # the reap loop runs every round anyway
            log_event(log, logging.INFO, "supervisor.signal", signal=signal.Signals(signum).name)
            if signum == signal.SIGTERM:
                self._stop(signal.SIGTERM, self.config.drain_timeout + CLOSE_GRACE)
            elif signum == signal.SIGINT:
                self._stop(signal.SIGINT, FAST_STOP_GRACE)
            elif self.state is GatewayState.RUNNING:
                if signum == signal.SIGHUP:
                    self._roll()
                elif signum == signal.SIGTTIN:
                    self.target_workers += 1
                elif signum == signal.SIGTTOU and self.config.accept == "reuseport":
                    # A seat's SO_REUSEPORT socket keeps getting connections while open in any process.
                    log_event(log, logging.WARNING, "supervisor.scale_down_refused",
                              reason="accept=reuseport: restart with fewer workers instead")
                elif signum == signal.SIGTTOU:
                    self.target_workers = max(1, self.target_workers - 1)

    def _stop(self, signum: int, grace: float) -> None:
        """Drain: workers decline new calls (503) and finish theirs; the control process goes last."""
        if self.state is not GatewayState.DRAINING:
            self._publish_state(GatewayState.DRAINING)
        deadline = time.monotonic() + grace
        if self.stopping_deadline is None or deadline < self.stopping_deadline:
            self.stopping_deadline = deadline
        self.stop_signal = signum
        for child in self.children.values():
            if child.kind == "worker":
                _signal(child.pid, signum)

    def _roll(self) -> None:
        """SIGHUP: read the configuration again and start a new generation of workers with it; the old one
        retires (stops accepting, drains) once the new one serves, and the control process (which signs stream
        tokens and answers ICE with routes) is replaced then, so it never runs ahead of the workers.
        An invalid configuration is refused with a log line, and nothing changes."""
        config = self.config
        if self.reload is not None:
            try:
                config = self.reload()
            except ConfigError as exc:
                self.metrics.RELOADS.labels("refused").inc()
                log_event(log, logging.ERROR, "supervisor.reload_refused", error=str(exc))
                return
        if not self.rolling:
            self.before_roll = (self.config, self.target_workers)
            self.boot_failures = 0  # failures of the code being replaced must not count against the new one
            self.backoff_until = 0.0
        fixed = [key for key in BOUND_AT_START if getattr(config, key) != getattr(self.config, key)]
        if config.workers != self.config.workers:
            if self.config.accept == "reuseport":
                fixed.append("workers")  # one SO_REUSEPORT socket per seat, bound at start (see SIGTTOU)
            else:
                self.target_workers = config.worker_count
        if fixed:
            log_event(log, logging.WARNING, "supervisor.reload_needs_restart", keys=fixed)
        self.config = config
        replaced = [c for c in self.children.values() if c.kind == "worker" and not c.retiring]
        for child in replaced:
            child.retiring = True  # no longer counted as active; told to retire once the new ones serve
            self._spawn("worker", seat=child.seat)
        self.rolling.extend(replaced)  # a roll still waiting (a second SIGHUP) retires with this one

    def _abandon_roll(self, code: int) -> None:
        """The new generation cannot boot (a bad deploy, a file it cannot read): stop trying, and let the old
        generation, which still serves, go on with the configuration it was started with. The next SIGHUP
        tries again. (gunicorn halts the whole arbiter here, taking every call down with it.)"""
        for child in self.children.values():
            if child.kind == "worker" and not child.retiring and child not in self.rolling:
                if child.served or self._has_served(child):
                    self._retire(child)  # a new worker that did boot leaves gracefully with its calls
                else:
                    child.retiring = True
                    _signal(child.pid, signal.SIGKILL)
        kept = 0
        for child in (c for c in self.rolling if c.pid in self.children):
            if child.served:
                child.retiring = False
                kept += 1
            else:
                _signal(child.pid, signal.SIGKILL)  # a middle generation (two quick SIGHUPs) that never served
        self.rolling = []
        if self.before_roll is not None:
            config, target = self.before_roll
            if config.workers != self.config.workers:
                self.target_workers = target  # else keep what SIGTTIN/SIGTTOU set during the roll
            self.config = config
            self.before_roll = None
        self.boot_failures = 0
        self.backoff_until = 0.0
        self.metrics.RELOADS.labels("failed").inc()
        log_event(log, logging.ERROR, "supervisor.reload_failed", exit_code=code, workers_kept=kept,
                  reason="the new workers could not boot; see child.crashed or worker.boot_failed above")

    def _kill_all(self, signum: int) -> None:
        for pid in list(self.children):
            _signal(pid, signum)
        if signum == signal.SIGKILL:
            self._reap_blocking()

    def _reap_blocking(self) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            child = self.children.pop(pid)
            if child.slot >= 0:
                self.scoreboard.clear(child.slot)

    def _publish_state(self, state: GatewayState) -> None:
        self.state = state
        self.scoreboard.gateway_state = state
        if hasattr(self, "metrics"):
            self.metrics.DRAINING.set(1 if state is GatewayState.DRAINING else 0)

    def _publish_workers(self) -> None:
        if hasattr(self, "metrics"):
            self.metrics.WORKERS.set(sum(1 for c in self.children.values() if c.kind == "worker"))


def _listen_socket(key: str, host: str, port: int, reuse_port: bool) -> socket.socket:
    """A listening socket for the config key `key`; an OSError that names the key and address if it fails."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host or "0.0.0.0", port))
        sock.listen(host_limits.LISTEN_BACKLOG)  # the kernel cuts it to net.core.somaxconn: checked at start
    except OSError as exc:
        sock.close()
        address = f"[{host}]" if ":" in host else host or "0.0.0.0"
        raise OSError(exc.errno, f"{key} {address}:{port}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


def _backoff(doublings: int) -> float:
    """Seconds to wait before replacing a child: BACKOFF_START doubled per recent failure, at most BACKOFF_MAX."""
    return min(BACKOFF_START * 2 ** doublings, BACKOFF_MAX)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _die_with_parent() -> None:
    """Linux: the kernel sends SIGTERM (a drain) to this child if the supervisor dies, so no orphan lingers.
    Workers also watch getppid() in their heartbeat: for other systems, and for the race where the parent
    died before this call."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _load(target: str) -> Callable[..., int]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)
