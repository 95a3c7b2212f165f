"""Staying with a container's process: wait for it, forward signals, relay its terminal.

`run` and `exec` without --detach do this; the runtime is a child subreaper so
the process (a grandchild after the double fork) is reparented to it.
"""

from __future__ import annotations

import os
import sys

from moorage import signals

# runc forwards every signal it may catch except these.
_NOT_FORWARDED = {signals.SIGCHLD, signals.SIGWINCH, signals.SIGURG, signals.SIGKILL,
                  signals.SIGSTOP}


def exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def wait_for(pid: int, master: int | None = None) -> int:
    """Wait for `pid`, relaying signals (and the terminal, given its pty master)."""

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in signals.valid_signals():
        if sig not in _NOT_FORWARDED:
            try:
                signals.signal(sig, forward)
            except (OSError, ValueError):
                pass
    if master is not None:
        _relay_terminal(master)
    while True:
        try:
            reaped, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        if reaped == pid:
            return exit_code(status)


def copy_size(master: int) -> None:
    import fcntl
    import termios

    try:
        size = fcntl.ioctl(sys.stdin.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(master, termios.TIOCSWINSZ, size)
    except OSError:
        pass


def _relay_terminal(master: int) -> None:
    """Copy stdin to the pty and the pty to stdout until the process closes it."""
    import termios
    import threading
    import tty

    stdin = sys.stdin.fileno()
    saved = None
    if os.isatty(stdin):
        saved = termios.tcgetattr(stdin)
        tty.setraw(stdin)
        copy_size(master)
        signals.signal(signals.SIGWINCH, lambda _s, _f: copy_size(master))

    def pump_stdin() -> None:
        while True:
            try:
                data = os.read(stdin, 4096)
            except OSError:
                return
            if not data:
                return
            os.write(master, data)

    threading.Thread(target=pump_stdin, daemon=True).start()
    stdout = sys.stdout.fileno()
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every slave descriptor is closed
                break
            if not data:
                break
            os.write(stdout, data)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        os.close(master)
