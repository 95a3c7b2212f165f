"""The one metadata layer: it opens moor.db, versions its schema, and migrates a file
written before it owned the database (image tables from store/metadata.py and a
containers table from the container store, as the engine left them)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from moorage.daemon.containers.store import ContainerStore
from moorage.store.leases import Leases
from moorage.store.metadata import (
    CRI_NAMESPACE,
    DOCKER_NAMESPACE,
    SCHEMA,
    SCHEMA_VERSION,
    ImageRecord,
    Metadata,
)

# The two schemas as they were before the metadata layer versioned the file: the image
# tables (store/metadata.py's SCHEMA, unchanged since) and daemon/container_store.py's.
_CONTAINERS_BEFORE = """
CREATE TABLE IF NOT EXISTS containers (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    doc  TEXT NOT NULL
)
"""
IMAGE = "sha256:" + "a" * 64


def _inspect(container_id: str, name: str, volume: str) -> str:
    return json.dumps({
        "Id": container_id, "Name": name, "Image": IMAGE,
        "Mounts": [{"Type": "volume", "Name": volume, "Source": "/x", "Destination": "/d",
                    "Mode": "z", "RW": True, "Propagation": ""},
                   {"Type": "bind", "Source": "/tmp", "Destination": "/b", "Mode": "",
                    "RW": True, "Propagation": "rprivate"}]})


def _old_database(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript(SCHEMA)
    db.execute(_CONTAINERS_BEFORE)
    db.execute("INSERT INTO images VALUES (?, ?, '', NULL, 0, 0.0, '', 0)",
               (IMAGE, "sha256:" + "b" * 64))
    db.execute("INSERT INTO image_refs VALUES ('docker.io/library/a:1', ?, 0)", (IMAGE,))
    db.execute("INSERT INTO containers VALUES (?, ?, ?)",
               ("c1", "/one", _inspect("c1", "/one", "vol1")))
    db.execute("INSERT INTO containers VALUES (?, ?, ?)",
               ("c2", "/two", _inspect("c2", "/two", "vol2")))
    db.execute("INSERT INTO containers VALUES (?, ?, ?)", ("c3", "/bad", "{not json"))
    db.commit()
    db.close()


def test_migrates_a_database_of_the_previous_schema(tmp_path: Path) -> None:
    path = tmp_path / "moor.db"
    _old_database(path)
    metadata = Metadata(str(path))
    assert metadata.connection().execute("PRAGMA user_version").fetchone()[0] \
        == SCHEMA_VERSION == 3
    images, volumes = Leases(metadata, "image"), Leases(metadata, "volume")
    assert images.holders(IMAGE) == ["c1", "c2"]
    assert volumes.holders("vol1") == ["c1"] and volumes.holders("vol2") == ["c2"]
    assert volumes.held() == {"vol1", "vol2"}
    rows = sorted(metadata.records("containers").load_all())
    assert [(r[0], r[1], r[2]) for r in rows] == [("c1", "/one", 0), ("c2", "/two", 0),
                                                  ("c3", "/bad", 0)]
    assert json.loads(rows[0][3])["Image"] == IMAGE
    assert metadata.image(IMAGE) is not None  # the image tables are untouched
    # Images and references made before namespaces are the Docker API's.
    assert [i.id for i in metadata.images(DOCKER_NAMESPACE)] == [IMAGE]
    assert metadata.ref("docker.io/library/a:1", namespace=DOCKER_NAMESPACE) == IMAGE
    assert metadata.images(CRI_NAMESPACE) == []
    assert metadata.ref("docker.io/library/a:1", namespace=CRI_NAMESPACE) is None

    # Opening it again migrates nothing twice; released leases stay released.
    images.release("c1")
    again = Metadata(str(path))
    assert Leases(again, "image").holders(IMAGE) == ["c2"]


def test_container_store_shares_the_connection_layer(tmp_path: Path) -> None:
    metadata = Metadata(str(tmp_path / "moor.db"))
    table = metadata.records("containers")
    table.put("c1", "/one", 1, '{"a": 1}')
    table.put("c1", "/one", 2, '{"a": 2}')
    with pytest.raises(sqlite3.IntegrityError):
        table.put("c2", "/one", 1, "{}")
    assert table.load_all() == [("c1", "/one", 2, '{"a": 2}')]
    table.delete("c1")
    assert ContainerStore(metadata).load_all() == []


def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "moor.db"
    Metadata(str(path))
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RuntimeError, match="newer than this moord"):
        Metadata(str(path))


def test_record_table_names_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Metadata(str(tmp_path / "moor.db")).records("containers; DROP TABLE images")


def test_addresses_claimed_once_and_released_by_owner(tmp_path: Path) -> None:
    metadata = Metadata(str(tmp_path / "moor.db"))
    assert metadata.claim_address("net1", "10.0.0.2", "ep1")
    assert not metadata.claim_address("net1", "10.0.0.2", "ep2")
    assert metadata.claim_address("net2", "10.0.0.2", "ep2")
    assert metadata.claimed_addresses("net1") == {"10.0.0.2"}
    metadata.release_addresses("ep1")
    assert metadata.claimed_addresses("net1") == set()
    assert Metadata(str(tmp_path / "moor.db")).claimed_addresses("net2") == {"10.0.0.2"}


def test_an_image_goes_when_no_namespace_and_no_lease_holds_it(tmp_path: Path) -> None:
    metadata = Metadata(str(tmp_path / "moor.db"))
    record = ImageRecord(IMAGE, "sha256:" + "b" * 64, "", None, 0, 0.0, "", False)
    assert metadata.add_image(record, [], namespace=DOCKER_NAMESPACE)
    assert not metadata.add_image(record, [], namespace=CRI_NAMESPACE)  # joins only
    metadata.set_ref("docker.io/library/a:1", IMAGE, namespace=CRI_NAMESPACE)
    assert not metadata.leave_namespace(IMAGE, DOCKER_NAMESPACE)
    assert metadata.namespaces(IMAGE) == [CRI_NAMESPACE]
    assert metadata.ref("docker.io/library/a:1", namespace=CRI_NAMESPACE) == IMAGE

    Leases(metadata, "image").acquire("c1", IMAGE)
    assert not metadata.leave_namespace(IMAGE, CRI_NAMESPACE)  # kept for its lease
    kept = metadata.image(IMAGE)
    assert kept is not None and kept.retained and metadata.images(CRI_NAMESPACE) == []
    assert metadata.refs(namespace=None) == []
    metadata.set_ref("docker.io/library/a:2", IMAGE, namespace=CRI_NAMESPACE)
    again = metadata.image(IMAGE)
    assert again is not None and not again.retained  # back in a namespace: visible
    Leases(metadata, "image").release("c1")
    assert metadata.leave_namespace(IMAGE, CRI_NAMESPACE)
    assert metadata.image(IMAGE) is None
