"""File descriptors over a unix socket (SCM_RIGHTS), with `_socket` only.

socket.send_fds and recv_fds do this, but the socket module imports enum and more:
~1.2 MB in every process the zygote forks (measured), and the zygote and the shims
pass fds to each other on every container's start.
"""

from __future__ import annotations

import sys
from _socket import CMSG_SPACE, SCM_RIGHTS, SOL_SOCKET

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see runtime/init.py)
if TYPE_CHECKING:
    from _socket import socket

_FD_SIZE = 4  # a C int


def send(sock: socket, data: bytes, fds: tuple[int, ...]) -> None:
    sock.sendmsg([data], [(SOL_SOCKET, SCM_RIGHTS, b"".join(
        fd.to_bytes(_FD_SIZE, sys.byteorder) for fd in fds))])


def receive(sock: socket, size: int, most: int) -> tuple[bytes, list[int]]:
    """One message of at most `size` bytes and the (at most `most`) fds it carried."""
    data, ancillary, _, _ = sock.recvmsg(size, CMSG_SPACE(_FD_SIZE * most))
    fds = [int.from_bytes(carried[i:i + _FD_SIZE], sys.byteorder)
           for level, kind, carried in ancillary if level == SOL_SOCKET and kind == SCM_RIGHTS
           for i in range(0, len(carried) - _FD_SIZE + 1, _FD_SIZE)]
    return data, fds
