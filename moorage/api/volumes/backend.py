"""What the volume routes need from the engine (models in moorage.model.volumes).

Names follow moby's volume service (Create, Get, List, Remove, Prune). Create, remove
and prune block on disk or mount work: the routes run them in a worker thread.
Inspect and list read the records in memory (and the leases, one indexed read of
the WAL database, which never waits for a writer): the routes call them on the event
loop, sparing each request two thread switches, its largest cost on a busy machine.
"""

from __future__ import annotations

from typing import Protocol

from moorage.model.volumes import VolumeCreateRequest, VolumeInfo, VolumePruneReport


class VolumeBackend(Protocol):
    def create(self, request: VolumeCreateRequest) -> VolumeInfo:
        """Made if missing, else the existing one as it is. InvalidParameter for a bad
        name or option, NotFound for a driver that does not exist."""
        ...

    def inspect(self, name: str) -> VolumeInfo:
        """NotFound ("get NAME: no such volume"). Never blocks."""
        ...

    def volumes(self, wanted: dict[str, list[str]]) -> list[VolumeInfo]:
        """Volumes matching the filters (dangling, driver, label, name), oldest first.
        InvalidParameter for an unknown filter or value. Never blocks."""
        ...

    def remove(self, name: str, force: bool = False) -> None:
        """NotFound (not with `force`); Conflict while a container uses it."""
        ...

    def prune(self, wanted: dict[str, list[str]], api_1_42: bool) -> VolumePruneReport:
        """Remove unused volumes (only anonymous ones from API 1.42 unless `all`)."""
        ...
