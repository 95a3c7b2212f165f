"""What POST /build asks for (the query parameters the classic builder honours)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class BuildRequest:
    tags: tuple[str, ...] = ()
    dockerfile: str = "Dockerfile"
    build_args: dict[str, str | None] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    pull: bool = False
    remove: bool = True
    force_remove: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    network_mode: str = ""
    quiet: bool = False
    extra_hosts: tuple[str, ...] = ()
    shm_size: int = 0
    # The RUN containers' resources (memory, memswap, cpushares, cpusetcpus, cpusetmems,
    # cpuperiod, cpuquota), by their HostConfig names.
    resources: dict[str, int | str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BuildCachePruneReport:
    deleted: tuple[str, ...]
    space_reclaimed: int
