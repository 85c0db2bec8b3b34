"""The prometheus-client multiprocess directory of one gateway: made at start, marked in use by a lock that every
process of the gateway holds, removed at exit; those that killed gateways left behind are removed at a start.

A lock rather than a pid in the name: a pid is reused, and means nothing in another pid namespace sharing /tmp,
while the kernel releases an flock(2) when the last descriptor of it closes, however its processes end. Children
inherit the locked descriptor at fork, so the directory of a killed supervisor stays while its orphaned workers
finish their calls, and goes at the next start after them.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile

PREFIX = "gateway-metrics-"
LOCK = "lock"
ENV = "PROMETHEUS_MULTIPROC_DIR"


class MetricsDir:
    def __init__(self) -> None:
        self.path = ""
        self.owned = False  # made here (and so removed here), not named by PROMETHEUS_MULTIPROC_DIR
        self._lock = -1

    def prepare(self) -> list[str]:
        """A fresh directory, exported as PROMETHEUS_MULTIPROC_DIR before any process imports the metrics (stale
        files would make counters start high). Returns the stale directories it removed."""
        path = os.environ.get(ENV)
        if path:
            os.makedirs(path, exist_ok=True)
            for name in os.listdir(path):
                if name.endswith(".db"):
                    os.unlink(os.path.join(path, name))
            self.path = path
            return []
        parent = tempfile.gettempdir()
        removed = remove_stale(parent)
        self.path = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=parent)
        self._lock = _hold_lock(self.path)
        self.owned = True
        os.environ[ENV] = self.path
        return removed

    def cleanup(self) -> None:
        if self.owned:
            shutil.rmtree(self.path, ignore_errors=True)
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1


def remove_stale(parent: str) -> list[str]:
    """Remove this user's gateway metrics directories whose lock nobody holds: every process of their gateway has
    ended. One without a lock file (made by an older version) is left alone: nothing tells whether it is live."""
    removed = []
    with os.scandir(parent) as entries:
        candidates = [entry.path for entry in entries if entry.name.startswith(PREFIX)
                      and entry.is_dir(follow_symlinks=False) and entry.stat().st_uid == os.getuid()]
    for path in candidates:
        try:
            lock = os.open(os.path.join(path, LOCK), os.O_RDWR | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock)
            continue  # held: a live gateway's
        shutil.rmtree(path, ignore_errors=True)
        os.close(lock)
        removed.append(path)
    return removed


def _hold_lock(path: str) -> int:
    """Lock a new file, then give it the name remove_stale() looks for: never seen there unlocked."""
    staging = os.path.join(path, LOCK + ".new")
    lock = os.open(staging, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    os.rename(staging, os.path.join(path, LOCK))
    return lock
