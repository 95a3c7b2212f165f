"""What the image routes need from the engine: the Protocol and its wire-neutral models.

Names mirror moby's daemon/images ImageService (Images, ImageDelete, ImportImage,
LoadImage, ExportImage, ImagesPrune, TagImage, ImageHistory) so each route can
be compared with the reference. Models use snake_case; the routes turn them
into the Engine API's PascalCase JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any, BinaryIO, Protocol

from moorage.api.distribution.backend import DistributionBackend


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


class ImageExport(Protocol):
    def write_to(self, out: IO[bytes]) -> None:
        """Write the archive to ``out`` (blocking; run it in a thread)."""
        ...


class ImageBackend(DistributionBackend, Protocol):
    """Blocking calls that may take long run in a worker thread (the routes see to it)."""

    def images(self, filters: dict[str, list[str]], all_images: bool) -> list[ImageSummary]:
        """Images matching ``filters`` (dangling, label, reference, before, since), newest
        first. InvalidParameter for an unknown filter or value; NotFound for a
        before/since image that does not exist."""
        ...

    def image_inspect(self, name: str) -> ImageDetail:
        """NotFound ("No such image: …"); InvalidParameter for a malformed reference."""
        ...

    def image_history(self, name: str) -> list[HistoryItem]:
        """The config's history, newest first. Errors as image_inspect."""
        ...

    def tag_image(self, name: str, repo: str, tag: str) -> None:
        """Point repo[:tag] at the image ``name``; moves the tag if it exists.
        NotFound for the source, InvalidParameter for a bad target. Idempotent."""
        ...

    def image_delete(self, name: str, force: bool, prune: bool) -> list[DeleteItem]:
        """Untag or delete, as moby's ImageDelete. NotFound, InvalidParameter, Conflict
        (in use by a container, referenced in several repositories)."""
        ...

    def load_image(self, stream: BinaryIO) -> list[str]:
        """Load a docker-archive or OCI-layout tar; returns the "Loaded image…" lines.
        InvalidParameter for a malformed archive or a hostile layer; nothing is
        left behind then."""
        ...

    def export_image(self, names: list[str]) -> ImageExport:
        """Check ``names`` now (NotFound, InvalidParameter) and return the writer."""
        ...

    def import_image(self, request: ImportRequest, body: BinaryIO | None) -> str:
        """Create an image from a rootfs tar (the body, or ``request.url``); returns its
        ID. InvalidParameter for a bad reference, change or tar."""
        ...

    def images_prune(self, filters: dict[str, list[str]]) -> PruneReport:
        """Delete unused images: dangling only unless dangling=false; until, label."""
        ...

    def store_check(self, repair: bool) -> CheckReport:
        """Verify blobs, snapshots and references; with ``repair`` remove orphans."""
        ...
