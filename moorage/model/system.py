"""What the engine reports about itself (GET /info)."""

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
