"""Logs with per-service prefixes (colored on a terminal), exec and run's attached streams."""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING, Any

from moorage.client.api import demux

if TYPE_CHECKING:
    from moorage.client.api import Client

# Compose v2's palette: the bright colors, then the normal ones, cycled per service.
_COLORS = [36, 33, 32, 35, 34, 96, 93, 92, 95, 94]


class Printer:
    def __init__(self, names: list[str], color: bool) -> None:
        self.width = max((len(n) for n in names), default=0)
        self.color = color
        self.lock = threading.Lock()
        self.palette = {n: _COLORS[i % len(_COLORS)] for i, n in enumerate(sorted(names))}

    def line(self, name: str, text: str) -> None:
        prefix = f"{name:<{self.width}}  | "
        if self.color:
            prefix = f"\x1b[{self.palette.get(name, 0)}m{prefix}\x1b[0m"
        with self.lock:
            sys.stdout.write(prefix + text + "\n")
            sys.stdout.flush()


def follow(client: Client, container: dict[str, Any], printer: Printer,
           params: dict[str, Any]) -> None:
    name = container["Names"][0].lstrip("/")
    pending = b""
    chunks = client.stream_raw("GET", f"/containers/{container['Id']}/logs", params)
    stream = ((1, c) for c in chunks) if container.get("Tty") else demux(chunks)
    for _fd, data in stream:
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            printer.line(name, line.decode(errors="replace").rstrip("\r"))
    if pending:
        printer.line(name, pending.decode(errors="replace"))


def relay(sock: Any, initial: bytes, tty: bool, send_stdin: bool) -> None:
    """Copy stdin to a hijacked socket and its output to stdout/stderr until it closes."""
    if send_stdin:
        def pump() -> None:
            try:
                while data := os.read(0, 65536):
                    sock.sendall(data)
                sock.shutdown(1)
            except OSError:
                pass
        threading.Thread(target=pump, daemon=True).start()

    def chunks() -> Any:
        if initial:
            yield initial
        while data := sock.recv(65536):
            yield data
    frames = ((1, c) for c in chunks()) if tty else demux(chunks())
    for fd, data in frames:
        out = sys.stderr if fd == 2 else sys.stdout
        out.buffer.write(data)
        out.flush()
    sock.close()


def terminal_size() -> tuple[int, int]:
    size = os.get_terminal_size(sys.stdout.fileno())
    return size.lines, size.columns


def interactive(sock: Any, initial: bytes) -> None:
    """A TTY session: the local terminal raw until the remote side closes."""
    import termios
    import tty

    saved = termios.tcgetattr(0)
    tty.setraw(0, termios.TCSANOW)  # TCSAFLUSH would drop what was typed before the attach
    try:
        relay(sock, initial, True, True)
    finally:
        termios.tcsetattr(0, termios.TCSADRAIN, saved)
