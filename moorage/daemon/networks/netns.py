"""Netlink sockets inside a container's network namespace.

pyroute2 opens a socket in another namespace by forking a helper process; moord is
large, so instead the calling worker thread enters the namespace (setns on a network
namespace changes only that thread), opens the socket there and comes back. A netlink
socket stays bound to the namespace it was opened in.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from moorage.linux import libc

# pyroute2 (rtnl's too) is ~20 MiB and 0.1 s of imports: dnsd, which only enters
# namespaces, needs none of it.
if TYPE_CHECKING:
    from pyroute2 import IPRoute


def namespace_path(pid: int) -> str:
    return f"/proc/{pid}/ns/net"


@contextmanager
def entered(path: str) -> Iterator[None]:
    """The calling thread in the network namespace at `path` for the block; a worker
    thread only, never the event loop's."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            libc.setns(target, libc.CLONE_NEWNET)
        finally:
            os.close(target)
        try:
            yield
        finally:
            libc.setns(own, libc.CLONE_NEWNET)
    finally:
        os.close(own)


def new_namespace() -> int:
    """A new network namespace, held by the fd returned (close-on-exec): the calling
    worker thread unshares into it, takes an fd of it and returns to its own."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        libc.unshare(libc.CLONE_NEWNET)
        try:
            return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            libc.setns(own, libc.CLONE_NEWNET)
    finally:
        os.close(own)


def held_path(fd: int) -> str:
    """A path to the namespace `fd` holds, which other processes open (setns) while the
    daemon keeps the fd."""
    return f"/proc/{os.getpid()}/fd/{fd}"


def tcp_socket(path: str) -> socket.socket:
    """An IPv4 TCP socket of the namespace at `path` ("" the daemon's own): it stays
    there wherever it is then used (the CRI's port forwarding connects with it)."""
    if not path:
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with entered(path):
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)


@contextmanager
def routes(path: str | None = None) -> Iterator[IPRoute]:
    """An IPRoute on the namespace at `path` (the daemon's own with None)."""
    from pyroute2 import IPRoute

    ipr = IPRoute() if path is None else IPRoute(use_socket=rtnl_socket(path))
    try:
        yield ipr
    finally:
        ipr.close()


def rtnl_socket(path: str) -> socket.socket:
    """An rtnetlink socket of the namespace at `path`."""
    from moorage.daemon.networks import rtnl

    with entered(path):
        return rtnl.open_socket()
