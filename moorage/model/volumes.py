"""Volumes as the daemon records them and as `/volumes` requests and reports them."""

# w() returns dataclasses.field(...) with the JSON key; ruff cannot see through it.
# ruff: noqa: RUF009

from __future__ import annotations

from dataclasses import dataclass, field

from moorage.model.fields import w

VOLUME_RECORD_VERSION = 1


@dataclass(frozen=True, slots=True)
class VolumeCreateRequest:
    """POST /volumes/create (moby's VolumeCreateBody)."""

    name: str = w("Name", "")
    driver: str = w("Driver", "")
    driver_opts: dict[str, str] | None = w("DriverOpts")
    labels: dict[str, str] | None = w("Labels")


@dataclass(frozen=True, slots=True)
class VolumeRecord:
    """A volume: `labels` and `options` are None when the request gave none (dockerd's
    inspect then shows null, not {}); `anonymous` for one a container made unnamed."""

    name: str
    created_ns: int
    driver: str = "local"
    labels: dict[str, str] | None = None
    options: dict[str, str] | None = None
    anonymous: bool = False


@dataclass(frozen=True, slots=True)
class VolumeInfo:
    """A volume with where it lives on the host and, when asked, its usage."""

    record: VolumeRecord
    mountpoint: str
    size: int = -1          # bytes; -1 when not computed (dockerd's UsageData)
    ref_count: int = -1     # containers using it; -1 when not computed


@dataclass(frozen=True, slots=True)
class VolumePruneReport:
    deleted: list[str] = field(default_factory=list)
    space_reclaimed: int = 0
