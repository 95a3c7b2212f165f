"""ImageService on a temporary data-root: removal rules with containers, retained
images, garbage collection and the store check, without a daemon.

The conflict messages are dockerd 20.10's, taken from `docker rmi` of an image
that a stopped container (`docker create`) uses.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from moorage.daemon.images.service import ImageService
from moorage.errors import Conflict, NotFound
from moorage.model.image import ImportRequest

CONTAINER = "094e58f797eb78c9df206c3678db96865f6401cdd8beb1952cf114f42da63945"


def _rootfs() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("hello")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    return out.getvalue()


@pytest.fixture
def service(tmp_path: Path) -> ImageService:
    return ImageService(str(tmp_path))


def _import(service: ImageService, repo: str) -> str:
    return service.import_image(ImportRequest(None, repo, "", "", ()), io.BytesIO(_rootfs()))


def test_resolve(service: ImageService) -> None:
    image_id = _import(service, "app:1")
    resolved = service.resolve("app:1")
    assert resolved.id == image_id and resolved.repo_tags == ["app:1"]
    for name in (image_id, image_id[7:], image_id[7:12], image_id[:12], "docker.io/library/app:1"):
        assert service.resolve(name).id == image_id
    with pytest.raises(NotFound, match=r"^No such image: app:latest$"):
        service.resolve("app")
    assert service.count() == 1


def test_remove_in_use(service: ImageService) -> None:
    image_id = _import(service, "app:1")
    short = image_id[7:19]
    service.prepare_rootfs(CONTAINER, image_id)
    with pytest.raises(Conflict) as caught:
        service.image_delete("app:1", force=False, prune=True)
    assert str(caught.value) == (
        'conflict: unable to remove repository reference "app:1" (must force) - container '
        f"094e58f797eb is using its referenced image {short}")
    with pytest.raises(Conflict) as caught:
        service.image_delete(short, force=False, prune=True)
    assert str(caught.value) == (
        f"conflict: unable to delete {short} (must be forced) - image is being used by "
        "stopped container 094e58f797eb")
    # Forced: gone from the lists, but the container can still start on it.
    service.image_delete("app:1", force=True, prune=True)
    assert service.count() == 0
    lower = service.rootfs_mounts(CONTAINER)[0].option("lowerdir") or ""
    assert Path(lower, "hello").exists()
    with pytest.raises(NotFound):
        service.resolve("app:1")
    service.collect_garbage()
    assert Path(lower, "hello").exists()
    # The container goes: its lease with it, and the image removed by force follows.
    service.remove_rootfs(CONTAINER)
    assert not Path(lower).exists()
    assert service.store_check(repair=False).orphans == ()


def test_check_finds_corruption(service: ImageService) -> None:
    image_id = _import(service, "app:1")
    layer = service.metadata.layers(image_id)[0].digest
    Path(service.content.path(layer)).write_bytes(b"tampered")
    report = service.store_check(repair=False)
    assert f"blob {layer}: content does not match its digest" in report.problems
    assert any("layer blob" in p for p in report.problems)
