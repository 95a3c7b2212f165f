"""Signal numbers and handlers without the `signal` module.

`signal` wraps every number in an IntEnum, which imports `enum` (~4 ms measured
here); the runtime and the CLI start for every command, so they use the C
module beneath.
"""

from __future__ import annotations

import _signal
from _signal import (
    NSIG,
    SIGCHLD,
    SIGHUP,
    SIGINT,
    SIGKILL,
    SIGQUIT,
    SIGSTOP,
    SIGTERM,
    SIGURG,
    SIGUSR1,
    SIGUSR2,
    SIGWINCH,
    signal,
    valid_signals,
)

__all__ = ["NSIG", "SIGCHLD", "SIGHUP", "SIGINT", "SIGKILL", "SIGQUIT", "SIGSTOP", "SIGTERM",
           "SIGURG", "SIGUSR1", "SIGUSR2", "SIGWINCH", "number", "parse", "signal",
           "valid_signals"]


def number(name: str) -> int | None:
    """The number of a signal name ("SIGTERM", "TERM", any case), None if unknown."""
    upper = name.upper()
    value = getattr(_signal, upper if upper.startswith("SIG") else "SIG" + upper, None)
    return value if isinstance(value, int) and 0 < value < NSIG else None


def parse(value: str) -> int | None:
    """A signal as Docker and runc spell it: a number, or a name with or without SIG in
    any case; None when it names no signal (callers word the error their own way)."""
    text = value.strip()
    if text.isdigit():
        return int(text) if 0 < int(text) < NSIG else None
    return number(text)
