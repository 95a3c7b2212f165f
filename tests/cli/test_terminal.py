"""`run -it` in a real pseudo-terminal: typed commands, resize, detach keys, restore."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

from clikit import MOOR, Clis


class Pty:
    def __init__(self, argv: list[str], env: dict[str, str], rows: int = 24,
                 cols: int = 80) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            # Sized before the program starts: set from the parent, it raced the
            # program's first look (a CI run drew `moor load` 0 columns wide, no bar).
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            os.execve(argv[0], argv, env)
        self.seen = b""

    def resize(self, rows: int, cols: int, signal: bool = True) -> None:
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def expect(self, needle: bytes, timeout: float = 20) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"{needle!r} not in {self.seen[-400:]!r}"
            if select.select([self.fd], [], [], left)[0]:
                try:
                    self.seen += os.read(self.fd, 4096)
                except OSError:
                    break
        return self.seen

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def wait(self, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            try:
                if select.select([self.fd], [], [], 0.1)[0]:
                    self.seen += os.read(self.fd, 4096)
            except OSError:
                time.sleep(0.05)
        raise AssertionError("moor did not exit")


def test_run_it_typed_resize_exit(clis: Clis) -> None:
    term = Pty([MOOR, "run", "-it", "--rm", "busybox", "sh"], clis.env(), rows=30, cols=100)
    term.expect(b"# ")
    term.send(b"stty size; echo ma''rk\r")
    term.expect(b"mark")
    assert b"30 100" in term.seen
    term.resize(40, 120)
    time.sleep(0.5)
    term.send(b"stty size; echo ne''xt\r")
    term.expect(b"next")
    assert b"40 120" in term.seen
    term.send(b"exit 7\r")
    assert term.wait() == 7


def test_detach_keys_leave_container_running_and_restore_terminal(clis: Clis) -> None:
    # A shell in a pty runs moor, detaches, then reports the terminal mode moor left.
    script = (f"stty -g > /tmp/.moor-stty-before; {MOOR} run -it --name det busybox sh; "
              "echo rc=$?; stty -g | cmp -s - /tmp/.moor-stty-before && echo restored; exit")
    term = Pty(["/bin/sh", "-c", script], clis.env())
    term.expect(b"# ")
    term.send(b"\x10\x11")
    term.expect(b"restored")
    assert b"rc=0" in term.seen
    state = clis.docker("inspect", "-f", "{{.State.Running}}", "det").stdout
    assert state == b"true\n"
    assert clis.moor("exec", "det", "true").returncode == 0


def test_exec_it_resize_and_exit_code(clis: Clis) -> None:
    assert clis.docker("run", "-d", "--name", "exit", "busybox", "sleep", "60").returncode == 0
    term = Pty([MOOR, "exec", "-it", "exit", "sh"], clis.env(), rows=33, cols=90)
    term.expect(b"# ")
    term.send(b"stty size; echo ma''rk\r")
    term.expect(b"mark")
    assert b"33 90" in term.seen
    term.send(b"exit 3\r")
    assert term.wait() == 3


def test_load_draws_layer_progress_on_a_tty(clis: Clis, tmp_path: Path) -> None:
    # a new, unique layer: an engine skips (and draws nothing for) layers it has
    (tmp_path / "blob").write_bytes(os.urandom(3 << 20))
    layer = subprocess.run(["tar", "-C", str(tmp_path), "-c", "blob"], capture_output=True,
                           check=True).stdout
    assert clis.docker("import", "-", "progress:1", input=layer).returncode == 0
    archive = str(tmp_path / "progress.tar")
    assert clis.docker("save", "-o", archive, "progress:1").returncode == 0
    assert clis.docker("rmi", "progress:1").returncode == 0
    term = Pty([MOOR, "load", "-i", archive], clis.env(), rows=30, cols=140)
    assert term.wait() == 0
    clis.docker("rmi", "progress:1")
    assert b"Loaded image: progress:1" in term.seen
    assert re.search(rb"\x1b\[2K\r[0-9a-f]{12}: Loading layer \[=+>\s*\]\s+[\d.]+[kM]B/",
                     term.seen), term.seen
