"""Terminals: a pty created inside the container, its master sent over --console-socket.

Imported by the init before pivot_root: past it, the host's Python library is
out of reach, so nothing here may import lazily.

The master travels as SCM_RIGHTS ancillary data, as runc sends it, so any
runc-compatible caller (containerd, our shim) can receive it.
"""

from __future__ import annotations

import fcntl
import os
import socket
import termios

from moorage.linux import libc

_TIOCSPTLCK = 0x40045431
_TIOCGPTPEER = 0x5441


def open_pty() -> tuple[int, int]:
    """(master, slave) of a new pty from this mount namespace's /dev/ptmx."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, _TIOCSPTLCK, b"\0\0\0\0")
    # TIOCGPTPEER opens the slave through the master, never by a path a
    # container process could have swapped.
    slave = fcntl.ioctl(master, _TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
    return master, slave


def send_master(sock_fd: int, master: int) -> None:
    with socket.socket(fileno=os.dup(sock_fd)) as sock:
        socket.send_fds(sock, [b"/dev/ptmx"], [master])


def receive_master(sock: object) -> int:
    assert isinstance(sock, socket.socket)
    _, fds, _, _ = socket.recv_fds(sock, 4096, 1)
    if not fds:
        raise OSError("console socket: no file descriptor received")
    return fds[0]


def make_controlling(slave: int) -> None:
    """Make the pty slave the session's terminal and the process's stdio."""
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def mount_console(slave: int) -> None:
    """The pty bound onto /dev/console, as runc does for a container's own terminal
    (a process reads its size through it, or a getty opens it)."""
    old_mask = os.umask(0)
    try:
        # O_NOFOLLOW, and the mount made through the fd: a link in the image's /dev
        # cannot send the bind elsewhere.
        target = os.open("/dev/console", os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o666)
    finally:
        os.umask(old_mask)
    try:
        libc.mount(f"/proc/self/fd/{slave}", f"/proc/self/fd/{target}", None, libc.MS_BIND)
    finally:
        os.close(target)


def attach_new_pty(console_fd: int, *, as_console: bool = False) -> None:
    """Open a pty, send its master to the console socket, take the slave as terminal
    (and as /dev/console: the container's own, not an exec's)."""
    master, slave = open_pty()
    if as_console:
        mount_console(slave)
    send_master(console_fd, master)
    os.close(master)
    os.close(console_fd)
    make_controlling(slave)
