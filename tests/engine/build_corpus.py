"""The Dockerfiles test_build.py builds on moord and on dockerd."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Case:
    name: str
    dockerfile: str
    files: dict[str, str | bytes | tuple[str]] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    run: list[str] = field(default_factory=list)
    listing: bool = True
    dockerfile_name: str = ""
    error: str = ""  # the expected last stderr line, when dockerd's differs on purpose
    leaves_cache: bool = False


CASES = [
    Case("run-basic", "FROM busybox\nRUN echo hello > /hello && mkdir -p /a/b\n"),
]
ERRORS: list[Case] = []
