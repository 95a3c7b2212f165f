"""Compose v2's progress display, on stderr.

On a terminal: a block redrawn in place, a line a resource with its latest state and how
long it has taken (`[+] Running 2/3`, ` ✔ Container p-web-1  Started  0.4s`), a spinner while
it is under way. Elsewhere: one plain line an event (` Container p-web-1  Started`), as
Compose v2 prints without a terminal."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TextIO

# The states that end a resource's work; any other is under way.
DONE = frozenset({"Created", "Started", "Running", "Removed", "Stopped", "Pulled", "Pushed",
                  "Healthy", "Built", "Killed", "Paused", "Unpaused", "Restarted", "Exited",
                  "Recreated", "Error"})
_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_TICK = 0.1


class Display:
    def __init__(self, stream: TextIO, tty: bool) -> None:
        self.stream = stream
        self.tty = tty
        self.lock = threading.Lock()
        # resource -> [status, started, finished or None]
        self.rows: dict[str, list[object]] = {}
        self.drawn = 0
        self.frame = 0
        self.ticker: threading.Thread | None = None

    def event(self, resource: str, status: str) -> None:
        with self.lock:
            if not self.tty:
                self.stream.write(f" {resource}  {status}\n")
                self.stream.flush()
                return
            now = time.monotonic()
            row = self.rows.get(resource)
            if row is None or (row[2] is not None and status not in DONE):
                row = self.rows[resource] = [status, now, None]
            row[0] = status
            row[2] = now if status in DONE else None
            self._draw()
            if self.ticker is None and row[2] is None:
                self.ticker = threading.Thread(target=self._tick, daemon=True)
                self.ticker.start()

    def done(self) -> None:
        """The block stays as last drawn; what comes next (logs, a later block) goes below."""
        with self.lock:
            self.rows.clear()
            self.drawn = 0

    def message(self, text: str, whole_line: bool = True) -> None:
        """Text of its own (a warning; a piece of a build's output, not always a whole
        line), above the block on a terminal."""
        with self.lock:
            self._erase()
            # below the text, the block starts on a line of its own
            end = "\n" if (whole_line or self.tty) and not text.endswith("\n") else ""
            self.stream.write(text + end)
            self._draw()

    def _tick(self) -> None:
        while True:
            time.sleep(_TICK)
            with self.lock:
                if all(row[2] is not None for row in self.rows.values()):  # also when done
                    self.ticker = None
                    return
                self.frame += 1
                self._draw()

    def _erase(self) -> None:
        if self.drawn:
            self.stream.write(f"\x1b[{self.drawn}A\r\x1b[J")
            self.drawn = 0

    def _draw(self) -> None:
        if not self.rows:
            self.stream.flush()
            return
        now = time.monotonic()
        width = max(len(r) for r in self.rows) + 2
        states = max(len(str(row[0])) for row in self.rows.values()) + 2
        done = sum(1 for row in self.rows.values() if row[2] is not None)
        lines = [f"[+] Running {done}/{len(self.rows)}"]
        for resource, (status, started, finished) in self.rows.items():
            mark = "✘" if status == "Error" else "✔" if finished is not None \
                else _SPINNER[self.frame % len(_SPINNER)]
            took = (finished if finished is not None else now) - started  # type: ignore[operator]
            lines.append(f" {mark} {resource:<{width}}{status!s:<{states}}{took:.1f}s")
        columns = _columns()
        self._erase()
        self.stream.write("".join(f"{line[:columns]}\x1b[K\n" for line in lines))
        self.drawn = len(lines)
        self.stream.flush()


def _columns() -> int:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns - 1
    except OSError:
        return 200


_display: Display | None = None


def display() -> Display:
    global _display
    if _display is None:
        _display = Display(sys.stderr, sys.stderr.isatty())
    return _display


def event(resource: str, status: str) -> None:
    display().event(resource, status)


def done() -> None:
    display().done()


def say(text: str) -> None:
    display().message(text)


def write(text: str) -> None:
    display().message(text, whole_line=False)
