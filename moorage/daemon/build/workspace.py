"""A writable layer mounted for a build step that changes files without a container
(COPY, ADD, WORKDIR): what the step writes lands in its upper directory, which
becomes the step's layer."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from moorage.daemon.containers.setup import mount_rootfs, unmount_rootfs
from moorage.daemon.images.service import ImageService


@dataclass(frozen=True, slots=True)
class Workspace:
    rootfs: str  # the merged view, mounted
    upper: str  # what the step changed
    lowers: list[str]  # the image's layers, top first


@contextmanager
def mounted(images: ImageService, root: str, image_id: str | None) -> Iterator[Workspace]:
    """The image ``image_id`` (None: scratch) mounted writable under ``root``; gone
    afterwards, whatever happens. Blocking."""
    key = "build-" + secrets.token_hex(16)
    directory = os.path.join(root, key)
    mounts = images.prepare_layer(key, image_id)
    try:
        rootfs = mount_rootfs(directory, mounts)
        try:
            lowers = [d for d in (mounts[0].option("lowerdir") or "").split(":") if d]
            yield Workspace(rootfs, mounts[0].option("upperdir") or "", lowers)
        finally:
            unmount_rootfs(directory)
    finally:
        images.remove_rootfs(key)
        shutil.rmtree(directory, ignore_errors=True)
