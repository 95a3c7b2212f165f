"""What the image routes need from the engine: the Protocol (models in moorage.model.image).

Names mirror moby's daemon/images ImageService (Images, ImageDelete, ImportImage,
LoadImage, ExportImage, ImagesPrune, TagImage, ImageHistory) so each route can
be compared with the reference. Models use snake_case; the routes turn them
into the Engine API's PascalCase JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, BinaryIO, Protocol

from moorage.api.distribution.backend import DistributionBackend
from moorage.model.image import (
    CheckReport,
    DeleteItem,
    HistoryItem,
    ImageDetail,
    ImageSummary,
    ImportRequest,
    PruneReport,
)


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

    def load_image(self, stream: BinaryIO, namespace: str = "",
                   progress: Callable[[str, int, int], None] | None = None) -> list[str]:
        """Load a docker-archive or OCI-layout tar; returns the "Loaded image…" lines.
        InvalidParameter for a malformed archive or a hostile layer; nothing is
        left behind then. ``namespace`` (moorage's own ``namespace`` query parameter)
        loads into another namespace of images: "k8s.io", the CRI's. ``progress`` is
        told (diff ID, bytes read, size) from a worker thread while a layer the store
        lacked is unpacked."""
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
