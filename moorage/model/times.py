"""Times as integer nanoseconds since the epoch, and their RFC 3339 text.

Integers compare and sort exactly; the text (Docker's, trimmed of trailing zeros)
exists only at the edges: the API's documents, the json-file log, old records.
"""

from __future__ import annotations

import datetime
import time

# Go's zero time.Time, as Docker shows an unset StartedAt or FinishedAt.
ZERO_TIME = "0001-01-01T00:00:00Z"
_SECOND = 1_000_000_000


def now_ns() -> int:
    return time.time_ns()


def format_rfc3339_nano(ns: int) -> str:
    """Go's RFC3339Nano in UTC (fraction trimmed of trailing zeros); ZERO_TIME for 0."""
    if ns <= 0:
        return ZERO_TIME
    seconds, fraction = divmod(ns, _SECOND)
    whole = datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{fraction:09d}".rstrip("0")
    return f"{whole}.{digits}Z" if digits else f"{whole}Z"


def parse_rfc3339_ns(text: str) -> int:
    """Nanoseconds of an RFC 3339 time ("Z" or an offset, up to 9 fraction digits);
    0 for Docker's zero time. ValueError when malformed."""
    if not text or text.startswith("0001-01-01"):
        return 0
    body = text.strip()
    offset = datetime.timedelta()
    if body.endswith(("Z", "z")):
        body = body[:-1]
    elif len(body) > 6 and body[-6] in "+-" and body[-3] == ":":
        sign = 1 if body[-6] == "+" else -1
        offset = sign * datetime.timedelta(hours=int(body[-5:-3]), minutes=int(body[-2:]))
        body = body[:-6]
    whole, _, fraction = body.partition(".")
    if fraction and (not fraction.isdigit() or len(fraction) > 9):
        raise ValueError(f"invalid RFC 3339 time: {text!r}")
    stamp = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.UTC) - offset
    seconds = int(stamp.timestamp())
    return seconds * _SECOND + int(fraction.ljust(9, "0") if fraction else 0)
