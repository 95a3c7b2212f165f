"""The snapshotter prepares a container's writable layer and describes its mount;
the caller mounts it (here with a real overlay mount in a temporary directory)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from moorage.daemon.images import transfer
from moorage.daemon.images.service import ImageService
from moorage.errors import Conflict, NotFound
from moorage.linux import libc
from moorage.model.image import ImportRequest

CONTAINER = "c" * 64


def _rootfs() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("hello")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    return out.getvalue()


@pytest.fixture
def service(tmp_path: Path) -> ImageService:
    return ImageService(str(tmp_path / "data"))


def test_prepare_rootfs_returns_an_overlay_mount(service: ImageService, tmp_path: Path) -> None:
    image_id = service.import_image(ImportRequest(None, "app:1", "", "", ()),
                                    io.BytesIO(_rootfs()))
    mounts = service.prepare_rootfs(CONTAINER, image_id)
    assert [(m.type, m.source) for m in mounts] == [("overlay", "overlay")]
    overlay = mounts[0]
    upper, work, lower = (overlay.option(k) for k in ("upperdir", "workdir", "lowerdir"))
    assert upper and work and lower
    assert lower.split(":") == service.snapshots.lower_dirs(
        service.metadata.layers(image_id)[-1].chain_id)
    # Nothing is mounted by the store; the caller mounts what it was given.
    assert not any(upper in line for line in Path("/proc/self/mountinfo").read_text().split("\n"))
    assert service.prepare_rootfs(CONTAINER, image_id) == mounts  # idempotent
    assert service.rootfs_mounts(CONTAINER) == mounts

    target = tmp_path / "rootfs"
    target.mkdir()
    libc.mount(overlay.source, str(target), overlay.type, 0, ",".join(overlay.options))
    try:
        assert (target / "hello").read_bytes() == b"hi"
        (target / "new").write_text("written")
        (target / "hello").unlink()
    finally:
        libc.umount2(str(target), libc.MNT_DETACH)
    assert Path(upper, "new").read_text() == "written"
    assert Path(lower, "hello").read_bytes() == b"hi"  # the image's layer is untouched

    with pytest.raises(Conflict):
        service.image_delete("app:1", force=False, prune=True)
    service.remove_rootfs(CONTAINER)
    assert not os.path.exists(upper)
    with pytest.raises(NotFound):
        service.rootfs_mounts(CONTAINER)
    service.remove_rootfs(CONTAINER)  # idempotent
    service.image_delete("app:1", force=False, prune=True)
    assert service.metadata.snapshots() == []


def test_prepare_rootfs_of_an_image_without_layers(service: ImageService) -> None:
    config = (b'{"architecture":"amd64","os":"linux","config":{},'
              b'"rootfs":{"type":"layers","diff_ids":[]}}')
    image_id = transfer.register(service, service.content.write_bytes(config).digest, [])
    mounts = service.prepare_rootfs(CONTAINER, image_id)
    lower = mounts[0].option("lowerdir") or ""
    assert os.path.isdir(lower) and os.listdir(lower) == []
    service.remove_rootfs(CONTAINER)


def test_prepare_rootfs_of_a_missing_image(service: ImageService) -> None:
    with pytest.raises(NotFound):
        service.prepare_rootfs(CONTAINER, "sha256:" + "0" * 64)
    assert service.leases.held() == set()


def test_check_sees_writable_layers(service: ImageService) -> None:
    image_id = service.import_image(ImportRequest(None, "app:1", "", "", ()),
                                    io.BytesIO(_rootfs()))
    service.prepare_rootfs(CONTAINER, image_id)
    assert service.store_check(repair=False).problems == ()
    stray = Path(service.snapshots.active_root, "d" * 64)
    stray.mkdir()
    report = service.store_check(repair=True)
    assert report.orphans == (f"writable layer {stray.name} without metadata",)
    assert report.removed == (f"writable layer {stray.name}",)
    assert not stray.exists()
    layer = service.snapshots.active_dir(CONTAINER)
    os.rename(layer, layer + ".moved")
    try:
        assert service.store_check(repair=False).problems == (
            f"writable layer {CONTAINER}: directory is missing",)
    finally:
        os.rename(layer + ".moved", layer)
    service.remove_rootfs(CONTAINER)


def test_collector_keeps_what_a_writable_layer_stands_on(service: ImageService) -> None:
    image_id = service.import_image(ImportRequest(None, "app:1", "", "", ()),
                                    io.BytesIO(_rootfs()))
    lower = service.prepare_rootfs(CONTAINER, image_id)[0].option("lowerdir") or ""
    # Even without the image's row (as after a crash), the layer under a container stays.
    service.metadata.delete_image(image_id)
    service.collect_garbage()
    assert Path(lower, "hello").exists()
    service.remove_rootfs(CONTAINER)
    service.collect_garbage()
    assert not Path(lower).exists()


def test_a_writable_layer_removed_later_is_gone_at_once_and_deleted_after(
        service: ImageService) -> None:
    """`run --rm` answers before the layer's files are deleted: they are out of sight
    (no active snapshot, no row) when remove_rootfs returns, in flight (not a leftover
    for check) until empty_trash, and gone after."""
    image_id = service.import_image(ImportRequest(None, "app:1", "", "", ()),
                                    io.BytesIO(_rootfs()))
    service.prepare_rootfs(CONTAINER, image_id)
    layer = service.snapshots.active_dir(CONTAINER)
    Path(layer, "fs", "written").write_text("data")
    service.remove_rootfs(CONTAINER, later=True)
    assert not os.path.exists(layer)
    assert service.snapshots.active_on_disk() == []
    assert len(os.listdir(service.tmp_dir)) == 1
    assert service.store_check(repair=False).orphans == ()
    service.empty_trash()
    assert os.listdir(service.tmp_dir) == []
    assert service.store_check(repair=False).orphans == ()


def test_a_volatile_rootfs_mounts_again(service: ImageService, tmp_path: Path) -> None:
    """An AutoRemove container's layer is mounted volatile (no syncs); the mark that
    leaves, which overlayfs refuses later mounts over, goes at the next mount."""
    from moorage.daemon.containers import setup

    image_id = service.import_image(ImportRequest(None, "app:1", "", "", ()),
                                    io.BytesIO(_rootfs()))
    mounts = service.prepare_rootfs(CONTAINER, image_id)
    container_dir = str(tmp_path / "container")
    for volatile in (True, True, False):
        rootfs = setup.mount_rootfs(container_dir, mounts, volatile=volatile)
        try:
            line = next(line for line in Path("/proc/self/mountinfo").read_text()
                        .splitlines() if f" {rootfs} " in line)
            options = line.rsplit(" ", 1)[-1].split(",")  # the superblock's
            assert bool({"volatile", "fsync=volatile"} & set(options)) == volatile
            assert Path(rootfs, "hello").read_bytes() == b"hi"
        finally:
            setup.unmount_rootfs(container_dir)
    service.remove_rootfs(CONTAINER)


def test_init_layer_is_shared_and_kept(service: ImageService, tmp_path: Path) -> None:
    """Docker's containers lie on one init layer per data-root (its files above the
    image, its directories below), made on first need;
    the store's check and a restart keep it, and a writable layer without it has none."""
    image_id = service.import_image(ImportRequest(None, "app:1", "", "", ()),
                                    io.BytesIO(_rootfs()))
    init = os.path.join(service.snapshots.root, "init", "fs")
    assert not os.path.exists(init)
    plain = service.prepare_rootfs("p" * 64, image_id)[0].option("lowerdir") or ""
    assert init not in plain.split(":") and not os.path.exists(init)
    overlay = service.prepare_rootfs(CONTAINER, image_id, init=True)[0]
    other = service.prepare_rootfs("o" * 64, image_id, init=True)[0]
    lowers = (overlay.option("lowerdir") or "").split(":")
    assert lowers == [init, *plain.split(":"), service.snapshots.init_below]
    assert other.option("lowerdir") == overlay.option("lowerdir")
    # The choice is the writable layer's: asked again without it, it keeps it.
    assert service.prepare_rootfs(CONTAINER, image_id) == [overlay]
    target = tmp_path / "rootfs"
    target.mkdir()
    libc.mount(overlay.source, str(target), overlay.type, 0, ",".join(overlay.options))
    try:
        assert (target / ".dockerenv").stat().st_size == 0
        assert os.readlink(target / "etc/mtab") == "/proc/mounts"
        assert (target / "hello").read_bytes() == b"hi"
        assert (target / "proc").is_dir() and (target / "dev/pts").is_dir()
    finally:
        libc.umount2(str(target), libc.MNT_DETACH)
    assert service.store_check(repair=True).removed == ()
    # A daemon stopped while making it leaves a stage behind, which goes at the next
    # start; one whose init layer went makes it again at the next mount.
    stage = Path(service.tmp_dir, "unpack-leftover")
    stage.mkdir()
    restarted = ImageService(service.data_root)
    assert os.path.isdir(init) and not stage.exists()
    os.rename(os.path.dirname(init), str(tmp_path / "gone"))
    assert restarted.rootfs_mounts(CONTAINER) == [overlay] and os.path.isdir(init)
    for key in ("p" * 64, "o" * 64, CONTAINER):
        restarted.remove_rootfs(key)
