"""RFC 3339 times as Docker writes them, and integer nanoseconds since the epoch.

Go's time.RFC3339Nano ("2006-01-02T15:04:05.999999999Z07:00") is what moby puts
in JSON: UTC as "Z", the fraction with its trailing zeros trimmed, and no dot at
all for a whole second. Records keep integer nanoseconds, which sort correctly
(".1Z" sorts after ".15Z" as text). Only the time module: the shim and the
runtime may import this on their start paths.
"""

from __future__ import annotations

import time

# Go's zero time.Time, which Docker shows for "never" (FinishedAt of a new container).
ZERO = "0001-01-01T00:00:00Z"
_NS = 1_000_000_000
_DAY = 86_400


def now() -> str:
    return format_ns(time.time_ns())


def format_ns(ns: int) -> str:
    """RFC3339Nano in UTC, as Go formats it."""
    seconds, fraction = divmod(ns, _NS)
    days, second = divmod(seconds, _DAY)
    year, month, day = _civil(days)
    hour, rest = divmod(second, 3600)
    minute, second = divmod(rest, 60)
    digits = f"{fraction:09d}".rstrip("0")
    return (f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
            + (f".{digits}" if digits else "") + "Z")


def parse_ns(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time (any fraction up to 9 digits, "Z"
    or a ±hh:mm offset). ValueError for anything else."""
    if len(text) < 20 or text[4] != "-" or text[7] != "-" or text[10] not in "Tt" \
            or text[13] != ":" or text[16] != ":":
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    year, month, day = _number(text, 0, 4), _number(text, 5, 7), _number(text, 8, 10)
    hour, minute, second = _number(text, 11, 13), _number(text, 14, 16), _number(text, 17, 19)
    if not (1 <= month <= 12 and 1 <= day <= _month_days(year, month) and hour < 24
            and minute < 60 and second < 60):
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    rest = text[19:]
    fraction = 0
    if rest.startswith("."):
        end = 1
        while end < len(rest) and rest[end].isdigit():
            end += 1
        if end == 1 or end > 10:
            raise ValueError(f"not an RFC 3339 time: {text!r}")
        fraction = int(rest[1:end].ljust(9, "0"))
        rest = rest[end:]
    if rest in ("Z", "z"):
        offset = 0
    elif len(rest) == 6 and rest[0] in "+-" and rest[3] == ":":
        offset = (_number(rest, 1, 3) * 60 + _number(rest, 4, 6)) * 60
        offset = -offset if rest[0] == "-" else offset
    else:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    seconds = _days(year, month, day) * _DAY + hour * 3600 + minute * 60 + second - offset
    return seconds * _NS + fraction


def _number(text: str, start: int, end: int) -> int:
    part = text[start:end]
    if not part.isdigit() or not part.isascii():
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    return int(part)


def _month_days(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _days(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's days_from_civil)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def _civil(days: int) -> tuple[int, int, int]:
    """The date ``days`` after 1970-01-01 (Hinnant's civil_from_days)."""
    days += 719468
    era = days // 146097
    day_of_era = days - era * 146097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36524
                   - day_of_era // 146096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted_month = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * shifted_month + 2) // 5 + 1
    month = shifted_month + 3 if shifted_month < 10 else shifted_month - 9
    return year_of_era + era * 400 + (month <= 2), month, day
