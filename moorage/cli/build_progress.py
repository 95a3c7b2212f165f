"""How moor build shows a classic build's messages: as they come (plain), or in
BuildKit's terminal style, one line per step with its time or CACHED and the
steps' output indented under them (tty)."""

from __future__ import annotations

import sys
import time


class PlainView:
    def stream(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def done(self) -> None:
        pass


class TerminalView:
    def __init__(self) -> None:
        import re  # here: the plain view (scripts, pipes) starts faster without it

        self.step_line = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
        # The classic builder's own bookkeeping lines, which this view replaces.
        self.noise = re.compile(r"^( ---> |Removing intermediate container |Successfully built )")
        self.started = time.monotonic()
        self.step: str | None = None
        self.step_started = 0.0
        self.cached = False
        self.number = 0
        self.buffer = ""
        sys.stdout.write("[+] Building\n")

    def stream(self, text: str) -> None:
        self.buffer += text
        while "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            self._line(line)

    def _line(self, line: str) -> None:
        match = self.step_line.match(line)
        if match:
            self._finish()
            self.number += 1
            self.step = f"[{match.group(1)}/{match.group(2)}] {match.group(3)}"
            self.step_started = time.monotonic()
            self.cached = False
            return
        if line == " ---> Using cache":
            self.cached = True
            return
        if self.noise.match(line) or line.startswith(" ---> Running in "):
            return
        if line.startswith("Successfully tagged "):
            self._finish()
            sys.stdout.write(f" => naming to {line.removeprefix('Successfully tagged ')}\n")
            return
        if self.step is not None and line:
            elapsed = time.monotonic() - self.step_started
            sys.stdout.write(f" => #{self.number} {elapsed:.3f} {line}\n")
        elif line:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def _finish(self) -> None:
        if self.step is None:
            return
        if self.cached:
            sys.stdout.write(f" => CACHED {self.step}\n")
        else:
            elapsed = time.monotonic() - self.step_started
            sys.stdout.write(f" => {self.step}  {elapsed:.1f}s\n")
        self.step = None
        sys.stdout.flush()

    def done(self) -> None:
        if self.buffer:
            self._line(self.buffer)
            self.buffer = ""
        self._finish()
        sys.stdout.write(f"[+] Building {time.monotonic() - self.started:.1f}s (done)\n")
        sys.stdout.flush()


def view(mode: str) -> PlainView | TerminalView:
    """``--progress``: auto (the terminal view on a terminal), plain or tty."""
    if mode not in ("auto", "plain", "tty"):
        raise ValueError(f'invalid progress mode "{mode}": use auto, plain or tty')
    if mode == "tty" or (mode == "auto" and sys.stdout.isatty()):
        return TerminalView()
    return PlainView()
