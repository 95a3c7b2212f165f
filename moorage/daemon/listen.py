"""The daemon's claim on its exec-root and API sockets, as dockerd makes it.

A pidfile under the exec-root keeps a second daemon off the same state; a unix
socket that answers belongs to a live daemon and is never taken over (a stale
file is removed). The socket is bound under a private name, given its owner
and 0660, and only then renamed into place: it is never reachable with the
umask's mode.
"""

from __future__ import annotations

import grp
import logging
import os
import socket
import tempfile

from moorage.errors import MoorError
from moorage.fsutil import atomic_write

log = logging.getLogger("moord")

PIDFILE = "moord.pid"
_BACKLOG = 128


def claim_pidfile(exec_root: str) -> str:
    """Write our pid to <exec-root>/moord.pid; refuse, in dockerd's words, when the
    pid recorded there is alive. Returns the path, for release_pidfile."""
    os.makedirs(exec_root, 0o755, exist_ok=True)
    path = os.path.join(exec_root, PIDFILE)
    try:
        with open(path) as f:
            recorded = f.read().strip()
    except FileNotFoundError:
        recorded = ""
    if recorded.isdigit() and int(recorded) != os.getpid() \
            and os.path.exists(f"/proc/{recorded}"):
        raise MoorError(f"pid file found, ensure moord is not running or delete {path}")
    atomic_write(path, str(os.getpid()), sync=False)
    return path


def release_pidfile(path: str) -> None:
    try:
        with open(path) as f:
            ours = f.read().strip() == str(os.getpid())
        if ours:
            os.unlink(path)
    except FileNotFoundError:
        pass


def listen_unix(path: str) -> socket.socket:
    """A listening socket at `path`, 0660 (group `moor` when it exists) from the start."""
    parent = os.path.dirname(path) or "."
    _make_dirs(parent)
    _refuse_live_socket(path)
    # mkdtemp's folder is 0700: nobody reaches the socket before it is restricted.
    private = tempfile.mkdtemp(prefix=".moord-", dir=parent)
    staging = os.path.join(private, "api.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(staging)
        _restrict(staging)
        sock.listen(_BACKLOG)
        os.replace(staging, path)
    except BaseException:
        sock.close()
        raise
    finally:
        try:
            os.unlink(staging)
        except FileNotFoundError:
            pass
        os.rmdir(private)
    return sock


def _make_dirs(path: str) -> None:
    """Missing folders 0755 whatever the umask: the socket's own mode guards it."""
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for folder in reversed(missing):
        try:
            os.mkdir(folder)
        except FileExistsError:
            continue
        os.chmod(folder, 0o755)


def _refuse_live_socket(path: str) -> None:
    if not os.path.lexists(path):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        os.unlink(path)  # a stale socket file from a daemon that did not stop cleanly
        return
    except OSError as err:
        raise MoorError(f"cannot use {path}: {err.strerror}") from None
    finally:
        probe.close()
    raise MoorError(f"another daemon is listening on {path}: stop it first, or pass another "
                    "-H unix:// socket")


def _restrict(path: str) -> None:
    """0660, group `moor` when it exists: like docker.sock and its `docker` group."""
    try:
        os.chown(path, 0, grp.getgrnam("moor").gr_gid)
    except KeyError:
        pass
    os.chmod(path, 0o660)


def warn_without_client_verification(host: str) -> None:
    """dockerd's warning for a tcp:// host that does not verify client certificates."""
    log.warning("Binding to IP address without --tlsverify is insecure and gives root access "
                "on this machine to everyone who has access to your network. host=%s", host)
