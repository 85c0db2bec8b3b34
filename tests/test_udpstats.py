import socket

from gateway.dataplane.udpstats import read_drops, socket_inode


def test_kernel_drops_of_a_full_socket_are_read():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        receiver.bind(("127.0.0.1", 0))
        inode = socket_inode(receiver)
        assert read_drops({inode}) == {inode: 0}
        for _ in range(200):  # far more than 4 KiB of buffer holds; nobody reads
            sender.sendto(b"x" * 1000, receiver.getsockname())
        assert read_drops({inode})[inode] > 100


def test_unknown_inodes_are_absent():
    assert read_drops({1}) == {}
