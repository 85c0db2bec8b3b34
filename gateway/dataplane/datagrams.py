"""Reads the RTP and RTCP sockets of every call on one worker and hands each datagram to its call.

Compiled (the Cython data plane): one epoll set of the worker's own holds every call's sockets, is registered
with the event loop once, and is drained in C: one wakeup serves many sockets, each datagram is read into one
reused buffer, and no Python call is made per datagram. uvloop offers no C-level readiness hook, and one loop
reader per socket cost a handle and a Python call per datagram: most of the user time left (design notes).
As Python: one loop reader per socket.

Either way one datagram is read per socket per wakeup: the poll is level-triggered, so a socket with more
queued is served again next round, which spares the recv that would end every drain loop with EAGAIN.
"""

from __future__ import annotations

import asyncio
import socket

import cython

from gateway.dataplane.media import CallAdapter

if cython.compiled:  # C-level names for the compiled data plane; the Python one never reaches them
    from cython.cimports.cpython.bytes import PyBytes_FromStringAndSize
    from cython.cimports.gateway.dataplane.libc_net import (
        EPOLL_CLOEXEC,
        EPOLL_CTL_ADD,
        EPOLL_CTL_DEL,
        EPOLLIN,
        MSG_DONTWAIT,
        epoll_create1,
        epoll_ctl,
        epoll_event,
        epoll_wait,
        recv,
    )
    from cython.cimports.libc.errno import ECONNREFUSED, errno
    from cython.cimports.libc.stdlib import free, malloc
    from cython.cimports.posix.unistd import close as close_fd

MAX_DATAGRAM = cython.declare(cython.Py_ssize_t, 65535)
MAX_EVENTS = cython.declare(cython.int, 64)  # sockets served per wakeup; more ready ones wait for the next round
RTCP_FLAG = cython.declare(cython.ulonglong, 1 << 32)  # in an epoll event's data: RTCP; the descriptor below it


class DatagramReader:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._calls: dict[int, CallAdapter] = {}  # by socket descriptor
        if cython.compiled:
            self._epoll = epoll_create1(EPOLL_CLOEXEC)
            if self._epoll < 0:
                raise OSError(errno, "epoll_create1")
            self._events = cython.cast(cython.pointer(epoll_event), malloc(MAX_EVENTS * cython.sizeof(epoll_event)))
            self._buffer = cython.cast(cython.p_char, malloc(MAX_DATAGRAM))
            loop.add_reader(self._epoll, self._drain)

    def add(self, sock: socket.socket, call: CallAdapter, rtcp: bool) -> None:
        fd = sock.fileno()
        self._calls[fd] = call
        if cython.compiled:
            event = cython.declare(epoll_event)
            event.events = EPOLLIN
            event.data.u64 = fd | (RTCP_FLAG if rtcp else 0)
            if epoll_ctl(self._epoll, EPOLL_CTL_ADD, fd, cython.address(event)) < 0:
                del self._calls[fd]
                raise OSError(errno, "epoll_ctl")
        else:
            self._loop.add_reader(fd, self._read_one, sock, call, rtcp)

    def remove(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        if self._calls.pop(fd, None) is None:
            return
        if cython.compiled:
            epoll_ctl(self._epoll, EPOLL_CTL_DEL, fd, cython.NULL)
        else:
            self._loop.remove_reader(fd)

    def resume(self, sock: socket.socket, call: CallAdapter, rtcp: bool) -> None:
        """The socket reported an error (ECONNREFUSED: ICMP port unreachable): it is read from again. As Python,
        libuv stops polling a socket on POLLERR (uv__poll_io closes its handle), so the error still pending is
        read off (SO_ERROR clears it, or the new handle would fail the same way) and the socket registered
        again. Compiled, the epoll set still holds it and the next recv reads the error."""
        if not cython.compiled:
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            self.remove(sock)
            self.add(sock, call, rtcp)

    def close(self) -> None:
        if cython.compiled:
            self._loop.remove_reader(self._epoll)
            close_fd(self._epoll)
            free(self._events)
            free(self._buffer)

    def _read_one(self, sock: socket.socket, call: CallAdapter, rtcp: bool) -> None:
        """As Python: one socket is readable."""
        try:
            data = sock.recv(MAX_DATAGRAM)
        except ConnectionRefusedError:
            call.on_unreachable()  # ICMP port unreachable for an earlier datagram
            return
        except OSError:
            return  # EAGAIN after a spurious wakeup
        call.on_datagram(data, rtcp, self._loop.time())

    def _drain(self) -> None:
        """Compiled: the epoll set is readable; one datagram from each ready socket."""
        now = self._loop.time()
        ready = epoll_wait(self._epoll, self._events, MAX_EVENTS, 0)
        for index in range(ready):
            tag = self._events[index].data.u64
            fd = tag & (RTCP_FLAG - 1)
            size = recv(fd, self._buffer, MAX_DATAGRAM, MSG_DONTWAIT)
            call = self._calls.get(fd)
            if call is None:
                continue
            if size >= 0:
                call.on_datagram(PyBytes_FromStringAndSize(self._buffer, size), tag >= RTCP_FLAG, now)
            elif errno == ECONNREFUSED:
                call.on_unreachable()  # ICMP port unreachable for an earlier datagram; else EAGAIN
