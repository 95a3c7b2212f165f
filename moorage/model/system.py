"""What the engine reports about itself (GET /info and GET /version)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SystemInfo:
    containers: int
    running: int
    paused: int
    stopped: int
    images: int
    data_root: str
    default_runtime: str
    runtimes: tuple[str, ...]
    cgroup_version: str
    name: str
    ncpu: int
    mem_total: int
    kernel_version: str
    operating_system: str
    architecture: str
    live_restore: bool


@dataclass(frozen=True, slots=True)
class VersionInfo:
    version: str
    kernel_version: str
    arch: str            # Go's GOARCH name: amd64, arm64…
    language: str        # what moby reports as GoVersion: the interpreter's version
