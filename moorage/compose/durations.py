"""Go durations (`1m30s`, `500ms`) and byte sizes (`512m`) as Compose reads them."""

from __future__ import annotations

import re

from moorage.compose.errors import ComposeError

_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
          "m": 60_000_000_000, "h": 3_600_000_000_000}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)b?$", re.IGNORECASE)


def nanoseconds(value: str | int | float) -> int:
    if isinstance(value, int | float):
        return int(value * 1_000_000_000)
    text = value.strip()
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ComposeError(f'time: invalid duration "{value}"')
    return int(total)


def size(value: str | int) -> int:
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value).strip())
    if not match:
        raise ComposeError(f"invalid size: '{value}'")
    power = " kmgtp".index(match.group(2).lower() or " ")
    return int(float(match.group(1)) * 1024 ** power)


def go_duration(value: str | int | float) -> str:
    """A duration as Go's time.Duration prints it (what Compose v2's `config` shows):
    `1m0s`, `1h2m3.5s`, `500ms`."""
    ns = nanoseconds(value)
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        unit, scale = next((u, n) for u, n in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1))
                           if ns >= n)
        return _decimal(ns, scale) + unit
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = _decimal(rest, 1_000_000_000) + "s"
    if hours:
        return f"{hours}h{minutes}m{seconds}"
    return f"{minutes}m{seconds}" if minutes else seconds


def _decimal(value: int, scale: int) -> str:
    whole, fraction = divmod(value, scale)
    digits = str(fraction).rjust(len(str(scale)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)
