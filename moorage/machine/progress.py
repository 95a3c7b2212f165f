"""The create's progress: one line per step; on a terminal each line ends with its time."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from moorage.machine.errors import MachineError


class Progress:
    def __init__(self, name: str, stream: object = None) -> None:
        self.name = name
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()  # type: ignore[attr-defined]
        self.open_line = False  # a step's title waits for its " done" on a terminal

    def say(self, text: str) -> None:
        if self.open_line:
            self.stream.write("\n")  # type: ignore[attr-defined]
            self.open_line = False
        self.stream.write(f"({self.name}) {text}\n")  # type: ignore[attr-defined]
        self.stream.flush()  # type: ignore[attr-defined]

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        """Runs one step; a failure inside becomes a MachineError naming it."""
        start = time.monotonic()
        if self.tty:
            self.stream.write(f"{title}...")  # type: ignore[attr-defined]
            self.stream.flush()  # type: ignore[attr-defined]
            self.open_line = True
        else:
            self.stream.write(f"{title}...\n")  # type: ignore[attr-defined]
        try:
            yield
        except MachineError as err:
            if self.tty:
                self.stream.write(" failed\n")  # type: ignore[attr-defined]
            if err.step is None:
                raise MachineError(str(err), title.lower()) from None
            raise
        except OSError as err:
            if self.tty:
                self.stream.write(" failed\n")  # type: ignore[attr-defined]
            raise MachineError(str(err), title.lower()) from None
        if self.tty:
            done = f" done ({time.monotonic() - start:.1f}s)\n"
            self.stream.write(done if self.open_line else f"{title}:{done}")  # type: ignore[attr-defined]
            self.open_line = False
        self.stream.flush()  # type: ignore[attr-defined]
