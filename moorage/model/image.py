"""Image records and the results of image operations, as the daemon returns them.

Names mirror moby's daemon/images types; fields are snake_case, and api/images
turns them into the Engine API's PascalCase JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ImageSummary:
    """One entry of GET /images/json (Engine API ImageSummary)."""

    id: str
    parent_id: str
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    created: int
    size: int
    labels: dict[str, str] | None


@dataclass(frozen=True, slots=True)
class ImageDetail:
    """GET /images/{name}/json (Engine API ImageInspect)."""

    id: str
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    parent: str
    comment: str
    created: str
    container: str
    container_config: dict[str, Any]
    docker_version: str
    author: str
    config: dict[str, Any]
    architecture: str
    variant: str
    os: str
    os_version: str
    size: int
    graph_driver_data: dict[str, str]
    layers: tuple[str, ...]
    last_tag_time: str


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One entry of GET /images/{name}/history, newest first."""

    id: str
    created: int
    created_by: str
    tags: tuple[str, ...]
    size: int
    comment: str


@dataclass(frozen=True, slots=True)
class DeleteItem:
    """One line of DELETE /images/{name} or of a prune: exactly one field is set."""

    untagged: str = ""
    deleted: str = ""


@dataclass(frozen=True, slots=True)
class PruneReport:
    deleted: tuple[DeleteItem, ...]
    space_reclaimed: int


@dataclass(frozen=True, slots=True)
class ImportRequest:
    """POST /images/create?fromSrc=…: the rootfs comes from ``url`` or, without one, the body."""

    url: str | None
    repo: str
    tag: str
    message: str
    changes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CheckReport:
    """moor system check: what was verified, what is wrong, what was removed."""

    blobs: int
    snapshots: int
    images: int
    references: int
    problems: tuple[str, ...]
    orphans: tuple[str, ...]
    removed: tuple[str, ...]
