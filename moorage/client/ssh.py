"""ssh://[user@]host[:port]: the daemon's API through `moor system dial-stdio` run remotely.

Like the docker CLI's connhelper: the local ssh process gets one end of a
socketpair as its stdin and stdout, the client speaks HTTP over the other end.
"""

from __future__ import annotations

import os
import socket
import subprocess


def ssh_argv(rest: str) -> list[str]:
    target = rest.split("/", 1)[0]
    user, _, hostport = target.rpartition("@")
    host, _, port = hostport.partition(":")
    argv = [os.environ.get("MOOR_SSH_COMMAND", "ssh")]
    if user:
        argv += ["-l", user]
    if port:
        argv += ["-p", port]
    # `--` keeps a host that starts with '-' from being read as an ssh option.
    return [*argv, "--", host, "moor", "system", "dial-stdio"]


def connect(rest: str) -> socket.socket:
    ours, theirs = socket.socketpair()
    try:
        subprocess.Popen(ssh_argv(rest), stdin=theirs, stdout=theirs, close_fds=True)
    except OSError:
        ours.close()
        raise
    finally:
        theirs.close()
    return ours
