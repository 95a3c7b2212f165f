"""Engine API versions this daemon speaks (shared/contracts: 1.41 up to 1.55)."""

from __future__ import annotations

MIN_VERSION = "1.41"
MAX_VERSION = "1.55"


def parse(version: str) -> tuple[int, int]:
    major, _, minor = version.partition(".")
    return int(major), int(minor)


def at_least(version: str, wanted: str) -> bool:
    return parse(version) >= parse(wanted)
