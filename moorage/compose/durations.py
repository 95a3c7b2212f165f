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
