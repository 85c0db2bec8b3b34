import subprocess
import sys

import pytest


def test_supervisor_imports_nothing_of_the_media_path():
    """Forked children must not inherit loops, threads or media state from the supervisor (design notes)."""
    code = (
        "import sys, gateway.cli, gateway.process.supervisor\n"
        "heavy = ('picows', 'numpy', 'uvloop', 'aiohttp', 'gateway.core.session', 'gateway.dataplane')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert result.stdout.strip() == "[]"


class _Counter:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def labels(self, reason: str) -> "_Counter":
        self.reason = reason
        return self

    def inc(self) -> None:
        self.counts[self.reason] = self.counts.get(self.reason, 0) + 1


class _Gauge:
    def set(self, value: float) -> None:
        self.value = value


class _Metrics:
    """The few metrics the supervisor sets, recorded instead of written to the multiprocess directory."""

    def __init__(self) -> None:
        self.WORKER_RESTARTS = _Counter()
        self.CONTROL_RESTARTS = _Counter().labels("")
        self.RELOADS = _Counter()
        self.WORKERS = _Gauge()
        self.DRAINING = _Gauge()


def supervisor_with(*children):
    from gateway.process.supervisor import Supervisor
    from gateway.shared.config import Config
    from gateway.shared.scoreboard import WorkerState

    supervisor = Supervisor(Config())
    supervisor.metrics = _Metrics()
    supervisor.metrics_dir.mark_dead = lambda pid: None
    for child in children:
        supervisor.children[child.pid] = child
        if child.kind == "worker":
            supervisor.scoreboard.beat(child.slot, child.pid,
                                       WorkerState.SERVING if child.served else WorkerState.BOOTING)
    return supervisor


def test_workers_that_cannot_boot_stop_the_supervisor_when_no_worker_serves():
    from gateway.process.children import Child
    from gateway.process.restarts import MAX_BOOT_FAILURES
    from gateway.shared.exit_codes import EXIT_BOOT_FAILURE

    supervisor = supervisor_with()
    for attempt in range(MAX_BOOT_FAILURES):
        supervisor._child_exited(Child(pid=2000 + attempt, kind="worker", slot=0), 1)  # died before serving
    assert supervisor.exit_code == EXIT_BOOT_FAILURE


def test_replacements_that_cannot_boot_keep_being_tried_while_a_sibling_carries_calls():
    import time

    from gateway.process.children import Child
    from gateway.process.restarts import BACKOFF_MAX, MAX_BOOT_FAILURES, STABLE_AFTER

    veteran = Child(pid=1000, kind="worker", slot=0, started=time.monotonic() - 10 * STABLE_AFTER, served=True)
    supervisor = supervisor_with(veteran)
    for attempt in range(3 * MAX_BOOT_FAILURES):
        doomed = Child(pid=2000 + attempt, kind="worker", slot=1)
        supervisor.scoreboard.assign(1, doomed.pid)
        supervisor._child_exited(doomed, 1)  # died before serving
        supervisor._check_heartbeats()  # the veteran has served for long: that must not hide the loop
    assert supervisor.exit_code == 0  # halting would drop the veteran's calls
    assert supervisor.workers.restarts.failures == 3 * MAX_BOOT_FAILURES  # not reset: the backoff keeps growing
    assert supervisor.workers.restarts.backoff_until - supervisor.workers.restarts.last_failure_at == BACKOFF_MAX
    assert supervisor.metrics.WORKER_RESTARTS.counts == {"boot_failed": 3 * MAX_BOOT_FAILURES}  # the crash-loop alert


def test_backoff_grows_with_each_failure_and_a_stuck_worker_counts_once():
    from gateway.process.children import Child

    supervisor = supervisor_with()
    delays = []
    for attempt in range(2):
        doomed = Child(pid=3000 + attempt, kind="worker", slot=attempt)
        supervisor._child_exited(doomed, 1)
        delays.append(supervisor.workers.restarts.backoff_until - supervisor.workers.restarts.last_failure_at)
    assert delays[1] == pytest.approx(2 * delays[0])  # differences of monotonic times: float rounding
    stuck = Child(pid=4000, kind="worker", slot=5, served=True, stuck=True)
    supervisor._child_exited(stuck, -9)
    assert supervisor.metrics.WORKER_RESTARTS.counts == {"boot_failed": 2, "stuck": 1}


@pytest.fixture
def signals(monkeypatch):
    """Signals the supervisor sends, recorded instead of sent: the pids in these tests are made up."""
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr("gateway.process.children.send_signal", lambda pid, signum: sent.append((pid, signum)))
    return sent


def fake_spawn(supervisor):
    """_spawn without fork: the child is recorded as started (pids from 7000)."""
    from gateway.process.children import Child

    def spawn(kind, listener=None):
        pid = 7000 + len(supervisor.children)
        supervisor.children[pid] = Child(pid=pid, kind=kind, listener=listener if listener is not None else -1,
                                         slot=supervisor.scoreboard.free_slot() if kind == "worker" else -1)

    supervisor._spawn = spawn


def test_a_new_generation_that_cannot_boot_is_given_up_and_the_old_one_goes_on(signals):
    import signal

    from gateway.process.children import Child
    from gateway.process.restarts import MAX_BOOT_FAILURES
    from gateway.shared.config import Config

    before = Config(connect_timeout=3.0)
    old = Child(pid=1000, kind="worker", slot=0, listener=0, served=True)
    control = Child(pid=1001, kind="control")
    supervisor = supervisor_with(old, control)
    supervisor.config = before
    supervisor.workers.restarts.failures = MAX_BOOT_FAILURES  # a replacement was failing before the fix was deployed
    supervisor.reload = lambda: Config(connect_timeout=4.0)
    fake_spawn(supervisor)
    supervisor._roll()
    assert supervisor.workers.restarts.failures == 0  # the old code's failures do not count against the new one
    assert old.retiring and supervisor.roll.old_generation == [old]
    assert control.pid in supervisor.children and not control.retiring  # replaced only once the roll applies
    booting = next(c for c in supervisor.children.values() if c.kind == "worker" and not c.retiring)
    del supervisor.children[booting.pid]
    supervisor._child_exited(booting, 1)  # the new generation dies before serving...
    for attempt in range(MAX_BOOT_FAILURES - 2):
        supervisor._child_exited(Child(pid=2000 + attempt, kind="worker", slot=1), 1)  # ...and its replacements
    late = Child(pid=3000, kind="worker", slot=2)  # still booting when the reload is given up
    supervisor.children[late.pid] = late
    supervisor._child_exited(Child(pid=2999, kind="worker", slot=1), 1)
    assert supervisor.exit_code == 0  # the gateway goes on
    assert not old.retiring and supervisor.roll.old_generation == []
    assert supervisor.config is before  # respawns use what the serving generation runs with
    assert (late.pid, signal.SIGKILL) in signals and late.retiring
    assert not any(pid in (old.pid, control.pid) for pid, _ in signals)
    assert supervisor.metrics.RELOADS.counts == {"failed": 1}


def test_a_control_process_that_cannot_boot_at_start_stops_the_gateway():
    from gateway.process.children import Child
    from gateway.process.restarts import MAX_BOOT_FAILURES
    from gateway.shared.exit_codes import EXIT_BOOT_FAILURE

    supervisor = supervisor_with()
    for attempt in range(MAX_BOOT_FAILURES):
        supervisor._child_exited(Child(pid=5000 + attempt, kind="control"), 1)
    assert supervisor.exit_code == EXIT_BOOT_FAILURE


def test_a_control_process_that_keeps_dying_later_backs_off_and_never_stops_the_gateway():
    from gateway.process.children import Child
    from gateway.process.restarts import BACKOFF_MAX, BACKOFF_START

    supervisor = supervisor_with()
    supervisor.control.proven = True  # one ran for long: the calls in progress no longer depend on it
    delays = []
    for attempt in range(10):
        control = Child(pid=5000 + attempt, kind="control")  # dies right after it started
        supervisor._child_exited(control, 1)
        delays.append(round(supervisor.control.restarts.backoff_until - control.started, 1))
    assert delays[:4] == [BACKOFF_START, 2 * BACKOFF_START, 4 * BACKOFF_START, 8 * BACKOFF_START]
    assert delays[-1] == BACKOFF_MAX
    assert supervisor.exit_code == 0
    assert supervisor.workers.restarts.backoff_until == 0.0  # the workers' own replacement is not held back by it
    assert supervisor.metrics.CONTROL_RESTARTS.counts == {"": 10}
    assert supervisor.metrics.WORKER_RESTARTS.counts == {}


def test_every_signal_the_supervisor_catches_has_its_handle_method():
    """Signals are dispatched by name (handle_sigterm, ...): one caught without a method would stop the loop."""
    from gateway.process.signals import HANDLED_SIGNALS
    from gateway.process.supervisor import Supervisor

    assert all(callable(getattr(Supervisor, f"handle_{signum.name.lower()}", None)) for signum in HANDLED_SIGNALS)


def test_a_new_worker_accepts_on_the_listener_fewest_active_workers_accept_on():
    """accept=reuseport: one listener per worker at start; a replacement takes the one its predecessor left, and a
    worker added with SIGTTIN shares the first."""
    from gateway.process.children import Child

    supervisor = supervisor_with(*(Child(pid=1000 + n, kind="worker", slot=n, listener=n) for n in range(3)))
    assert supervisor.children.free_listener(3) == 0  # every listener has its worker: the first takes one more
    del supervisor.children[1001]
    supervisor.children[1000].retiring = True  # a retiring worker is no longer counted
    assert supervisor.children.free_listener(3) == 0
    supervisor.children[1000].retiring = False
    assert supervisor.children.free_listener(3) == 1
