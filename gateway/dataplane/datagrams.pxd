# Types for the compiled data plane (Cython pure Python mode: datagrams.py is the source).
cimport cython
from libc.stdint cimport uint64_t

from gateway.dataplane.libc_net cimport epoll_event
from gateway.dataplane.media cimport CallAdapter


cdef class DatagramReader:
    cdef object _loop
    cdef dict _calls
    cdef int _epoll
    cdef epoll_event *_events
    cdef char *_buffer

    @cython.locals(fd=int)
    cpdef add(self, sock, CallAdapter call, bint rtcp)
    @cython.locals(fd=int)
    cpdef remove(self, sock)
    cpdef close(self)
    cpdef _read_one(self, sock, CallAdapter call, bint rtcp)
    @cython.locals(now=double, ready=int, index=int, tag=uint64_t, fd=int, size=Py_ssize_t, call=CallAdapter)
    cpdef _drain(self)
