# The system calls the compiled data plane makes itself (Linux): epoll for the worker's datagram sockets, and
# send/recv on connected UDP sockets without a Python object per datagram.
from libc.stdint cimport uint32_t, uint64_t


cdef extern from "<sys/epoll.h>" nogil:
    ctypedef union epoll_data_t:
        int fd
        uint64_t u64

    struct epoll_event:
        uint32_t events
        epoll_data_t data

    enum:
        EPOLLIN
        EPOLL_CTL_ADD
        EPOLL_CTL_DEL
        EPOLL_CLOEXEC

    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event *event)
    int epoll_wait(int epfd, epoll_event *events, int maxevents, int timeout)


cdef extern from "<sys/socket.h>" nogil:
    enum:
        MSG_DONTWAIT

    ssize_t send(int sockfd, const void *buf, size_t len, int flags)
    ssize_t recv(int sockfd, void *buf, size_t len, int flags)
