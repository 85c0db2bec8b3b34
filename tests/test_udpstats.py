import socket

from gateway.dataplane.udpstats import socket_inode, udp_sockets


def drops_of(inode: int) -> int | None:
    return next((drops for _, found, drops in udp_sockets() if found == inode), None)


def test_kernel_drops_of_a_full_socket_are_read():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        receiver.bind(("127.0.0.1", 0))
        inode = socket_inode(receiver)
        assert drops_of(inode) == 0
        for _ in range(200):  # far more than 4 KiB of buffer holds; nobody reads
            sender.sendto(b"x" * 1000, receiver.getsockname())
        assert drops_of(inode) > 100


def test_local_ports_of_ipv4_and_ipv6_sockets_are_read():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as v4, \
            socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as v6:
        v4.bind(("127.0.0.1", 0))
        v6.bind(("::1", 0))
        found = {(port, inode) for port, inode, _ in udp_sockets()}
        assert (v4.getsockname()[1], socket_inode(v4)) in found
        assert (v6.getsockname()[1], socket_inode(v6)) in found


def test_unknown_inodes_are_absent():
    assert drops_of(1) is None
