"""What the engine reports about itself (GET /info, GET /version, GET /system/df)."""

from __future__ import annotations

from dataclasses import dataclass

from moorage.model.image import ImageSummary
from moorage.model.records import ContainerRecord


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
    events_listeners: int
    logging_driver: str  # daemon.json's log-driver, the containers' default
    system_time: str     # RFC 3339, with nanoseconds
    open_files: int      # the daemon's file descriptors (NFd)
    threads: int         # the daemon's threads (where dockerd counts goroutines)
    http_proxy: str      # the daemon's proxy settings, credentials masked, as dockerd's
    https_proxy: str
    no_proxy: str


@dataclass(frozen=True, slots=True)
class VersionInfo:
    version: str
    kernel_version: str
    arch: str            # Go's GOARCH name: amd64, arm64…
    language: str        # what moby reports as GoVersion: the interpreter's version


@dataclass(frozen=True, slots=True)
class VolumeUsage:
    name: str
    mountpoint: str
    created_ns: int
    size: int
    ref_count: int


@dataclass(frozen=True, slots=True)
class BuildCacheUsage:
    """A build cache record as BuildKit's `system df` lists it (a kept build context
    is its "source.local")."""

    id: str
    kind: str
    description: str
    size: int
    created_ns: int
    last_used_ns: int
    in_use: bool


@dataclass(frozen=True, slots=True)
class DiskUsage:
    layers_size: int
    images: list[tuple[ImageSummary, int]]  # with the number of containers using it
    containers: list[tuple[ContainerRecord, tuple[int, int]]]  # with (SizeRw, SizeRootFs)
    volumes: list[VolumeUsage]
    build_cache: list[BuildCacheUsage]
