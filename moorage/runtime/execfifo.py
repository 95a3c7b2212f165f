"""The start of a created container: the byte its init writes to the exec fifo.

A module of its own with one function: a shim calls it in-process (no child to
fork for a start without poststart hooks), and each object it creates or touches
dirties a page the shim shares with the zygote. So no poll object: a blocking
read, which returns the init's byte, or EOF while the init has not opened its end
yet or once it died (the liveness check tells which).
"""

from __future__ import annotations

import os
import time

from moorage.errors import MoorError
from moorage.runtime.state import process_start_time


def release(fifo: str, pid: int, start_time: str | None) -> None:
    """Take the byte the init (`pid`, started at `start_time`) writes to the exec fifo
    once it may run, then remove the fifo; fail if the init died instead."""
    # Opened without blocking: a blocking open would wait forever for an init that
    # died before it opened its end.
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        os.set_blocking(fd, True)
        while not os.read(fd, 1):
            # The init may have opened its end, written the byte and ended (a process
            # as short as `true`, a zombie already) since the read above: the byte then
            # waits in the fifo, and only a read that still finds none means it died.
            if process_start_time(pid) != start_time:
                if os.read(fd, 1):
                    break
                raise MoorError("container process is already dead")
            time.sleep(0.001)
    finally:
        os.close(fd)
    os.unlink(fifo)
