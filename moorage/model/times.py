"""Times of records: integer nanoseconds since the epoch, 0 for "never".

Integers compare and sort exactly; the text (Go's RFC3339Nano, moorage.timefmt)
exists only at the edges: the API's documents, the json-file log, old records.
Docker shows "never" (an unset StartedAt or FinishedAt) as Go's zero time.
"""

from __future__ import annotations

import time

from moorage import timefmt

ZERO_TIME = timefmt.ZERO

now_ns = time.time_ns


def format_rfc3339_nano(ns: int) -> str:
    """Go's RFC3339Nano in UTC; ZERO_TIME for 0 (never)."""
    return timefmt.format_ns(ns) if ns > 0 else ZERO_TIME


def parse_rfc3339_ns(text: str) -> int:
    """Nanoseconds of an RFC 3339 time; 0 for an empty text or Docker's zero time.
    ValueError when malformed."""
    if not text or text.startswith("0001-01-01"):
        return 0
    return timefmt.parse_ns(text.strip())
