"""Running the docker CLI on a real pseudo-terminal (for -t, exec -it)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time

from enginekit import Daemon
from peers import DOCKER_CLI


def run_in_pty(daemon: Daemon, args: list[str], *, input: bytes = b"",
               timeout: float = 30, program: str = DOCKER_CLI,
               cwd: str | None = None) -> tuple[bytes, int]:
    """Run `docker args...` (or `program args...`) with a pty as its terminal; (everything it
    printed, exit code)."""
    master, slave = pty.openpty()
    # A new pty is 0x0; the CLI passes its size on as the container's ConsoleSize.
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "DOCKER_HOST": daemon.host,
           "DOCKER_CONFIG": os.path.join(daemon.data_root, "..", "docker-config")}
    process = subprocess.Popen([program, *args], stdin=slave, stdout=slave, stderr=slave,
                               env=env, start_new_session=True, cwd=cwd)
    os.close(slave)
    if input:
        time.sleep(0.5)
        os.write(master, input)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    break
                if not data:
                    break
                output += data
            elif process.poll() is not None:
                break
        return output, process.wait(timeout=max(1, deadline - time.monotonic()))
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()
