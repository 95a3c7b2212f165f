"""Docker's JSON progress streams (pull, push, load) drawn as the docker CLI draws them
(moby pkg/jsonmessage DisplayJSONMessagesStream): on a terminal one line per layer,
rewritten in place with a bar, sizes and the time left; otherwise plain lines only.

moorage.protocol.jsonmessage is the engine's encoder of these messages; the CLI
needs the other half, decoding progressDetail and drawing, which lives here.
"""

from __future__ import annotations

import time

from moorage.cli.output import human_size
from moorage.cli.session import CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO


def go_duration(seconds: int) -> str:
    """Go's time.Duration.String() for whole seconds: 0s, 45s, 1m30s, 2h0m5s."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def bar(current: int, total: int, width: int, started: float | None, now: float) -> str:
    """JSONProgress.String(): `[=====>    ]  1.2MB/2.4MB 3s`; the bar only on terminals
    wider than 110 columns, the time left on those wider than 50."""
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{human_size(current, 4):>8}"
    half = min(int(current / total * 100) // 2, 50)
    box = f"[{'=' * half}>{' ' * (50 - half)}] " if width > 110 else ""
    numbers = f"{human_size(current, 4):>8}" + ("" if current > total
                                                 else f"/{human_size(total, 4)}")
    left = ""
    if current > 0 and started and half < 50 and width > 50:
        per_byte = (now - started) / current
        left = " " + go_duration(int((total - current) * per_byte))
    return box + numbers + left


class Progress:
    """Feeds on decoded messages; raises CommandError on the stream's errorDetail."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.width = 200  # docker's width when the terminal's cannot be read
        if self.tty:
            import os

            try:
                self.width = os.get_terminal_size(out.fileno()).columns
            except OSError:
                pass
        self.lines: dict[str, int] = {}  # layer id → its line, counted from the first
        self.started: dict[str, float] = {}  # when a layer's progress was first seen

    def show(self, message: dict[str, Any]) -> None:
        if message.get("errorDetail") or message.get("error"):
            detail = message.get("errorDetail") or {}
            raise CommandError(detail.get("message") or message.get("error", ""))
        layer = message.get("id") or ""
        detail = message.get("progressDetail") or {}
        shown = self._bar(layer, detail) if detail else ""
        if not self.tty and shown:
            return  # no bars off a terminal: only the status lines
        text = (f"{layer}: " if layer else "") + self._body(message, shown)
        if not self.tty:
            self.out.write(text + "\n")
            return
        if not (layer and "progressDetail" in message):
            self.lines.clear()  # a line outside the per-layer block ends that block
            self.out.write(text + "\n")
            self.out.flush()
            return
        if layer not in self.lines:
            self.lines[layer] = len(self.lines)
            self.out.write("\n")
        up = len(self.lines) - self.lines[layer]
        self.out.write(f"\x1b[{up}A\x1b[2K\r{text}\r\x1b[{up}B")
        self.out.flush()

    def _bar(self, layer: str, detail: dict[str, Any]) -> str:
        now = time.time()
        started = detail.get("start") or self.started.setdefault(layer, now)
        return bar(detail.get("current") or 0, detail.get("total") or 0, self.width,
                   started, now)

    @staticmethod
    def _body(message: dict[str, Any], shown: str) -> str:
        if message.get("stream"):
            return str(message["stream"]).rstrip("\n")
        status = message.get("status") or ""
        return f"{status} {shown}" if shown else status
