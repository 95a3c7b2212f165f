"""Leases in the metadata layer: a container holds its image and its volumes.

An image a container uses cannot be removed, and it can once the container is
gone; the lease is a row in moor.db, so a daemon restart keeps it, and the
container's writable layer (an active snapshot) keeps its content across the
restart too.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from enginekit import start_daemon, stop_daemon

IMAGE = "moortest/leased:latest"


def _leases(data_root: str) -> set[tuple[str, str, str]]:
    with sqlite3.connect(os.path.join(data_root, "moor.db")) as db:
        return set(db.execute("SELECT holder, kind, resource FROM leases"))


def test_container_leases_image_and_volume_across_restart(
        tmp_path: Path, busybox_tar: bytes) -> None:
    daemon = start_daemon(str(tmp_path))
    try:
        daemon.docker("import", "-", IMAGE, input=busybox_tar, check=True)
        image_id = daemon.docker("inspect", "-f", "{{.Id}}", IMAGE,
                                 check=True).stdout.decode().strip()
        container = daemon.docker(
            "create", "--name", "holder", "-v", "leased-vol:/data", IMAGE, "sh", "-c",
            "cat /keep; echo again > /keep", check=True).stdout.decode().strip()
        daemon.docker("run", "--rm", "-v", "leased-vol:/data", IMAGE, "sh", "-c",
                      "echo first > /data/f", check=True)
        assert _leases(daemon.data_root) == {(container, "image", image_id),
                                             (container, "volume", "leased-vol")}
        # What is in the writable layer before the restart is there after it.
        upper = daemon.docker("inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", "holder",
                              check=True).stdout.decode().strip()
        Path(upper, "keep").write_text("kept\n")

        refused = daemon.docker("rmi", IMAGE)
        assert refused.returncode != 0
        assert f"container {container[:12]} is using its referenced image " \
            f"{image_id[7:19]}" in refused.stderr.decode()

        stop_daemon(daemon)
        daemon = start_daemon(str(tmp_path))
        assert _leases(daemon.data_root) == {(container, "image", image_id),
                                             (container, "volume", "leased-vol")}
        refused = daemon.docker("rmi", image_id[7:19])
        assert "image is being used by stopped container" in refused.stderr.decode()
        started = daemon.docker("start", "-a", "holder", check=True)
        assert started.stdout == b"kept\n"
        assert Path(upper, "keep").read_text() == "again\n"

        daemon.docker("rm", "holder", check=True)
        assert _leases(daemon.data_root) == set()
        assert not Path(upper).exists()
        removed = daemon.docker("rmi", IMAGE, check=True).stdout.decode()
        assert f"Deleted: {image_id}" in removed
    finally:
        daemon.docker("rm", "-f", "holder")
        stop_daemon(daemon)


def test_forced_removal_keeps_layers_until_the_container_goes(
        tmp_path: Path, busybox_tar: bytes) -> None:
    daemon = start_daemon(str(tmp_path))
    try:
        daemon.docker("import", "-", IMAGE, input=busybox_tar, check=True)
        daemon.docker("create", "--name", "orphan", IMAGE, "echo", "still here", check=True)
        daemon.docker("rmi", "-f", IMAGE, check=True)
        assert daemon.docker("images", "-q").stdout == b""
        assert daemon.docker("start", "-a", "orphan", check=True).stdout == b"still here\n"
        daemon.docker("rm", "orphan", check=True)
        snapshots = Path(daemon.data_root, "snapshots")
        # The init layer is the data-root's, not the container's.
        assert sorted(p.name for p in snapshots.iterdir()) == ["active", "init"]
        assert list(Path(snapshots, "active").iterdir()) == []
    finally:
        daemon.docker("rm", "-f", "orphan")
        stop_daemon(daemon)


def test_leases_of_containers_that_are_gone_are_released_at_start(
        tmp_path: Path, busybox_tar: bytes) -> None:
    """A crash between preparing a container and recording it leaves a lease and a
    writable layer behind; the next start releases them."""
    daemon = start_daemon(str(tmp_path))
    try:
        daemon.docker("import", "-", IMAGE, input=busybox_tar, check=True)
        image_id = daemon.docker("inspect", "-f", "{{.Id}}", IMAGE,
                                 check=True).stdout.decode().strip()
        daemon.docker("create", "--name", "kept", IMAGE, "true", check=True)
        stop_daemon(daemon)
        ghost = "f" * 64
        with sqlite3.connect(os.path.join(daemon.data_root, "moor.db")) as db:
            db.execute("INSERT INTO leases VALUES (?, 'image', ?)", (ghost, image_id))
            db.execute("INSERT INTO leases VALUES (?, 'volume', 'ghost-vol')", (ghost,))
            db.execute("INSERT INTO active_snapshots VALUES (?, NULL)", (ghost,))
        layer = Path(daemon.data_root, "snapshots", "active", ghost)
        (layer / "fs").mkdir(parents=True)
        daemon = start_daemon(str(tmp_path))
        assert {holder for holder, _, _ in _leases(daemon.data_root)} == {
            daemon.docker("inspect", "-f", "{{.Id}}", "kept", check=True).stdout.decode().strip()}
        assert not layer.exists()
        daemon.docker("rm", "kept", check=True)
        daemon.docker("rmi", IMAGE, check=True)
    finally:
        daemon.docker("rm", "-f", "kept")
        stop_daemon(daemon)


def test_writable_layer_of_a_container_made_before_snapshots_is_adopted(
        tmp_path: Path, busybox_tar: bytes) -> None:
    """Before this metadata layer, a container's writable layer was containers/<id>/diff
    with no row or lease; after an upgrade the container starts with that content."""
    daemon = start_daemon(str(tmp_path))
    try:
        daemon.docker("import", "-", IMAGE, input=busybox_tar, check=True)
        container = daemon.docker("create", "--name", "old", IMAGE, "cat", "/written",
                                  check=True).stdout.decode().strip()
        stop_daemon(daemon)
        # Back to the layout the engine had before: the layer in the container's directory.
        legacy = Path(daemon.data_root, "containers", container)
        active = Path(daemon.data_root, "snapshots", "active", container)
        os.rename(active / "fs", legacy / "diff")
        os.rename(active / "work", legacy / "work")
        (active / "empty").rmdir()
        (active / "init").unlink()
        active.rmdir()
        (legacy / "diff" / "written").write_text("before the upgrade\n")
        with sqlite3.connect(os.path.join(daemon.data_root, "moor.db")) as db:
            db.execute("DELETE FROM active_snapshots")
        daemon = start_daemon(str(tmp_path))
        assert daemon.docker("start", "-a", "old", check=True).stdout == b"before the upgrade\n"
        assert not (legacy / "diff").exists() and not (legacy / "work").exists()
        daemon.docker("rm", "old", check=True)
        daemon.docker("rmi", IMAGE, check=True)
    finally:
        daemon.docker("rm", "-f", "old")
        stop_daemon(daemon)
