"""RFC 3339 ↔ integer nanoseconds, as Go's time package formats and parses them."""

from __future__ import annotations

import datetime
import random

import pytest

from moorage import timefmt


@pytest.mark.parametrize(("ns", "text"), [
    (0, "1970-01-01T00:00:00Z"),
    (1_700_000_000_100_000_000, "2023-11-14T22:13:20.1Z"),
    (1_700_000_000_150_000_000, "2023-11-14T22:13:20.15Z"),
    (1_700_000_000_000_000_001, "2023-11-14T22:13:20.000000001Z"),
    (1_700_000_000_123_456_789, "2023-11-14T22:13:20.123456789Z"),
    (951_782_400 * 10**9, "2000-02-29T00:00:00Z"),
    (-62_135_596_800 * 10**9, timefmt.ZERO),
    (-1, "1969-12-31T23:59:59.999999999Z"),
])
def test_go_rfc3339nano(ns: int, text: str) -> None:
    assert timefmt.format_ns(ns) == text
    assert timefmt.parse_ns(text) == ns


def test_agrees_with_datetime() -> None:
    rng = random.Random(9)
    for _ in range(2000):
        seconds = rng.randrange(-62_135_596_800, 253_402_300_799)
        stamp = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
        assert timefmt.format_ns(seconds * 10**9) == stamp.strftime("%Y-%m-%dT%H:%M:%SZ") \
            .rjust(20, "0")
        assert timefmt.parse_ns(stamp.isoformat().replace("+00:00", "Z")) == seconds * 10**9


def test_offsets_and_fractions() -> None:
    assert timefmt.parse_ns("2023-11-14T23:13:20.5+01:00") == 1_700_000_000_500_000_000
    assert timefmt.parse_ns("2023-11-14T21:43:20-00:30") == 1_700_000_000 * 10**9
    # Sorting by the integer is sorting by time, which the trimmed text is not.
    early, late = "2023-11-14T22:13:20.1Z", "2023-11-14T22:13:20.15Z"
    assert early > late and timefmt.parse_ns(early) < timefmt.parse_ns(late)


@pytest.mark.parametrize("text", [
    "", "2023-11-14", "2023-11-14T22:13:20", "2023-13-01T00:00:00Z", "2023-02-29T00:00:00Z",
    "2023-11-14T24:00:00Z", "2023-11-14T22:13:20.Z", "2023-11-14T22:13:20.1234567891Z",
    "2023-11-14T22:13:20+0100", "2023-11-14 22:13:20Z",
    "\uff12\uff10\uff12\uff13-11-14T22:13:20Z",  # full-width digits
])
def test_refuses_what_is_not_rfc3339(text: str) -> None:
    with pytest.raises(ValueError):
        timefmt.parse_ns(text)
