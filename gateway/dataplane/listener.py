"""The worker's listening socket as picows's server sees it: accepting pauses while the process is out of
descriptors, instead of spinning, and resumes when some are free.

An accept() that fails with EMFILE/ENFILE leaves the connection queued, so a level-triggered listening socket
stays readable. aiofastnet 1.2.0 (the transport picows uses) means to stop watching the socket for a while then,
as asyncio does, but calls `remove_reader` on the socket, which has no such method: the AttributeError leaves
its reader in place, and the loop calls accept() again at once, for as long as the process is out of
descriptors (measured: a core at 100 % and two tracebacks logged per round). uvloop's own server survives it by
accepting and closing the queued connections (libuv's spare descriptor), but closes its listener for good when
it holds no spare.

So the server is given a socket whose fileno() is an epoll set holding the real listening socket: the set is
readable exactly when a connection waits. On EMFILE/ENFILE the listening socket leaves the set: the server sees
nothing to accept and the loop sleeps, while the queued connections wait (or go to the other workers sharing the
accept queue). `resume()` puts it back. Everything else (listen, setblocking, getsockname, accept) works on the
real socket. Linux only, as the rest of the worker.
"""

from __future__ import annotations

import errno
import select
import socket
from collections.abc import Callable

OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE)


class PausableListener(socket.socket):
    def __init__(self, listener: socket.socket, out_of_descriptors: Callable[[OSError], None]) -> None:
        """Takes `listener` over (it is detached). `out_of_descriptors` is called once accepting has paused."""
        super().__init__(listener.family, listener.type, listener.proto, fileno=listener.detach())
        self._gate = select.epoll()
        self._gate.register(super().fileno(), select.EPOLLIN)
        self._out_of_descriptors = out_of_descriptors
        self.paused = False

    def fileno(self) -> int:
        """What the event loop watches: readable when a connection waits and accepting is not paused."""
        return -1 if self._gate.closed else self._gate.fileno()

    def accept(self) -> tuple[socket.socket, object]:
        try:
            return super().accept()
        except OSError as exc:
            if exc.errno not in OUT_OF_DESCRIPTORS:
                raise
            self._gate.unregister(super().fileno())
            self.paused = True
            self._out_of_descriptors(exc)
            raise BlockingIOError(errno.EAGAIN, "accepting paused: out of descriptors") from exc

    def resume(self) -> None:
        """Accept again (a no-op unless paused, or once closed): the next accept() tells whether it can."""
        if self.paused and not self._gate.closed:
            self._gate.register(super().fileno(), select.EPOLLIN)
            self.paused = False

    def close(self) -> None:
        self._gate.close()
        super().close()
