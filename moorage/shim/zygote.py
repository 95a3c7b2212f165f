"""The zygote: exec'd once by the daemon, forks a shim per container.

It imports the runtime up front and stays single-threaded with no event loop,
so its children may unshare and setns (DESIGN.md, Processes) and no container
start pays for a Python interpreter. Requests arrive on stdin, one ShimConfig
JSON per line; each answer is one JSON line on stdout: {"pid", "init_pid"}
once the shim has created the container, or {"error"}.

Each shim is double-forked into its own session so it is reparented away
from the zygote and the daemon, and outlives both.
"""

from __future__ import annotations

import json
import os
import sys

# Loaded before the first fork so that every shim starts warm.
import moorage.runtime.container
import moorage.runtime.execute
import moorage.runtime.seccomp  # noqa: F401
from moorage.shim import shim
from moorage.shim.wire import ShimConfig, encode


def spawn(config: ShimConfig) -> dict:
    status_r, status_w = os.pipe()
    first = os.fork()
    if first == 0:
        try:
            os.close(status_r)
            os.setsid()
            if os.fork() == 0:
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
                os.close(null)
                shim.run(config, status_w)
        finally:
            os._exit(0)
    os.close(status_w)
    os.waitpid(first, 0)
    with os.fdopen(status_r, "rb") as status:
        line = status.readline()
    if not line:
        return {"error": "shim: exited before creating the container"}
    return json.loads(line)


def main() -> None:
    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    for line in stdin:
        try:
            reply = spawn(ShimConfig.from_json(line.decode()))
        except Exception as err:  # the daemon gets every failure as a reply
            reply = {"error": f"zygote: {type(err).__name__}: {err}"}
        stdout.write(encode(reply))
        stdout.flush()


if __name__ == "__main__":
    main()
