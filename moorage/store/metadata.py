"""The metadata layer: the one owner of <data-root>/moor.db (SQLite, WAL).

It holds the image tables (images, references, snapshots, containers' active
snapshots), the leases that keep what containers use from being removed, and
record tables (one JSON document per row, with a schema version) that other
services own, such as ``containers``. Nothing else opens the file.

Images live in namespaces, as containerd's do: the Docker API's ("moby") and the
CRI's ("k8s.io") each have their own references and their own list of images,
over one set of image rows, layers and snapshots, so a layer is stored once. An
image row goes when no namespace holds it and no lease does; until the leases
are gone it stays, ``retained``.

Every change is one transaction (BEGIN IMMEDIATE, so writers queue instead of
failing midway); room is kept aside for them on a filling disk
(moorage.store.reserve). Connections are per thread: the daemon calls in from its
event loop and from worker threads, and a sqlite3 connection must stay in its thread.
The file's schema version is SQLite's user_version; ``_MIGRATIONS`` brings an
older file forward in one transaction when the layer opens it.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from moorage.errors import SystemFailure
from moorage.store.reserve import Reserve

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id            TEXT PRIMARY KEY,  -- sha256 of the config blob (image-spec config.md ImageID)
    manifest      TEXT NOT NULL,     -- digest of the OCI manifest blob
    parent        TEXT NOT NULL DEFAULT '',
    top_chain     TEXT,              -- chain ID of the last layer; NULL without layers
    size          INTEGER NOT NULL,
    created       REAL NOT NULL,     -- the config's "created", as a UNIX time
    last_tag_time TEXT NOT NULL DEFAULT '',
    -- Removed by force while containers used it: hidden, kept until they are gone.
    retained      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS image_layers (
    image_id   TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    idx        INTEGER NOT NULL,
    digest     TEXT NOT NULL,        -- the layer blob as stored (maybe compressed)
    media_type TEXT NOT NULL,
    blob_size  INTEGER NOT NULL,
    diff_id    TEXT NOT NULL,
    chain_id   TEXT NOT NULL,
    PRIMARY KEY (image_id, idx)
);
CREATE INDEX IF NOT EXISTS image_layers_chain ON image_layers(chain_id);
CREATE TABLE IF NOT EXISTS image_refs (
    ref      TEXT PRIMARY KEY,       -- normalised: docker.io/library/busybox:latest or …@sha256:…
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    is_digest INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS image_refs_image ON image_refs(image_id);
CREATE TABLE IF NOT EXISTS snapshots (
    chain_id TEXT PRIMARY KEY,
    parent   TEXT,                   -- chain ID of the layer below; NULL for a base layer
    diff_id  TEXT NOT NULL,
    size     INTEGER NOT NULL
);
"""

# Schema 1: leases (GC roots) and containers' writable layers (active snapshots).
_LEASES = ("""
CREATE TABLE IF NOT EXISTS leases (
    holder   TEXT NOT NULL,          -- who uses it: a container ID
    kind     TEXT NOT NULL,          -- what: "image", "volume"
    resource TEXT NOT NULL,          -- an image ID, a volume name
    PRIMARY KEY (holder, kind, resource)
)""", "CREATE INDEX IF NOT EXISTS leases_resource ON leases(kind, resource)", """
CREATE TABLE IF NOT EXISTS active_snapshots (
    key    TEXT PRIMARY KEY,         -- the holder's ID (a container ID)
    parent TEXT                      -- chain ID of the image's top layer, NULL without layers
)""")

# Schema 3: namespaces. References are named within one (the CRI's k8s.io beside the
# Docker API's moby); an image is in the namespaces that have a row for it here.
_NAMESPACES = ("""
CREATE TABLE image_refs_v3 (
    namespace TEXT NOT NULL,
    ref       TEXT NOT NULL,
    image_id  TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    is_digest INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace, ref)
)""", """
CREATE TABLE IF NOT EXISTS image_namespaces (
    image_id  TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    namespace TEXT NOT NULL,
    PRIMARY KEY (image_id, namespace)
)""")

DOCKER_NAMESPACE = "moby"
CRI_NAMESPACE = "k8s.io"
NAMESPACES = (DOCKER_NAMESPACE, CRI_NAMESPACE)
SCHEMA_VERSION = 3
_TABLE_NAME = re.compile(r"^[a-z_]+$")


@dataclass(frozen=True, slots=True)
class ImageRecord:
    id: str
    manifest: str
    parent: str
    top_chain: str | None
    size: int
    created: float
    last_tag_time: str
    retained: bool


@dataclass(frozen=True, slots=True)
class LayerRecord:
    digest: str
    media_type: str
    blob_size: int
    diff_id: str
    chain_id: str


@dataclass(frozen=True, slots=True)
class RefRecord:
    ref: str
    image_id: str
    is_digest: bool


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    chain_id: str
    parent: str | None
    diff_id: str
    size: int


@dataclass(frozen=True, slots=True)
class ActiveSnapshotRecord:
    """A container's writable layer on top of chain ``parent``."""

    key: str
    parent: str | None


_IMAGE_COLUMNS = "id, manifest, parent, top_chain, size, created, last_tag_time, retained"


def _image(row: tuple) -> ImageRecord:
    return ImageRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6], bool(row[7]))


class Metadata:
    """moor.db: the image tables, leases and record tables; safe to share between threads."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._reserve = Reserve(path + "-reserve")
        # executescript commits on its own; every statement is IF NOT EXISTS.
        self.connection().executescript(SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        with self.transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"{self.path}: schema version {version} is newer than "
                                   f"this moord's ({SCHEMA_VERSION})")
            for step in _MIGRATIONS[version:]:
                step(db)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            # WAL + NORMAL is durable across a process crash (kill -9), which is
            # the guarantee DESIGN.md asks for; FULL would add an fsync per commit.
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; nested use joins the outer one."""
        conn = self.connection()
        if conn.in_transaction:
            yield conn
            return
        self._reserve.before_write()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as err:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(err, sqlite3.OperationalError) \
                    and err.sqlite_errorcode == sqlite3.SQLITE_FULL:
                raise SystemFailure(f"write {self.path}: no space left on device") from None
            raise

    # --- images ---------------------------------------------------------------

    def image(self, image_id: str) -> ImageRecord | None:
        row = self.connection().execute(
            f"SELECT {_IMAGE_COLUMNS} FROM images WHERE id = ?", (image_id,)).fetchone()
        return _image(row) if row else None

    def images(self, namespace: str | None) -> list[ImageRecord]:
        """The images of ``namespace``, newest first; with None every row, the
        retained ones too."""
        if namespace is None:
            rows = self.connection().execute(
                f"SELECT {_IMAGE_COLUMNS} FROM images ORDER BY created DESC, id")
        else:
            rows = self.connection().execute(
                f"SELECT {_IMAGE_COLUMNS} FROM images JOIN image_namespaces n ON n.image_id"
                " = images.id WHERE n.namespace = ? ORDER BY created DESC, id", (namespace,))
        return [_image(r) for r in rows]

    def in_namespace(self, image_id: str, namespace: str) -> bool:
        return self.connection().execute(
            "SELECT 1 FROM image_namespaces WHERE image_id = ? AND namespace = ?",
            (image_id, namespace)).fetchone() is not None

    def namespaces(self, image_id: str) -> list[str]:
        return [r[0] for r in self.connection().execute(
            "SELECT namespace FROM image_namespaces WHERE image_id = ? ORDER BY namespace",
            (image_id,))]

    def image_ids_with_prefix(self, hex_prefix: str, *, namespace: str) -> list[str]:
        rows = self.connection().execute(
            "SELECT image_id FROM image_namespaces WHERE namespace = ? "
            "AND substr(image_id, 8, ?) = ?", (namespace, len(hex_prefix), hex_prefix))
        return [r[0] for r in rows]

    def count_images(self, namespace: str) -> int:
        return self.connection().execute(
            "SELECT count(*) FROM image_namespaces WHERE namespace = ?",
            (namespace,)).fetchone()[0]

    def add_image(self, record: ImageRecord, layers: list[LayerRecord], *,
                  namespace: str) -> bool:
        """Insert an image and its layers, in ``namespace``; False (and the image only
        joins the namespace) if it exists."""
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM images WHERE id = ?", (record.id,)).fetchone():
                db.execute("UPDATE images SET retained = 0 WHERE id = ?", (record.id,))
                db.execute("INSERT OR IGNORE INTO image_namespaces VALUES (?, ?)",
                           (record.id, namespace))
                return False
            db.execute(f"INSERT INTO images ({_IMAGE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
                       (record.id, record.manifest, record.parent, record.top_chain,
                        record.size, record.created, record.last_tag_time,
                        int(record.retained)))
            db.executemany(
                "INSERT INTO image_layers VALUES (?,?,?,?,?,?,?)",
                [(record.id, i, lay.digest, lay.media_type, lay.blob_size, lay.diff_id,
                  lay.chain_id) for i, lay in enumerate(layers)])
            db.execute("INSERT INTO image_namespaces VALUES (?, ?)", (record.id, namespace))
        return True

    def leave_namespace(self, image_id: str, namespace: str) -> bool:
        """Drop the image and its references from ``namespace``, in one transaction with
        what follows when no namespace holds it any more: the row is deleted, or kept
        retained while containers lease it. True when the row is gone."""
        with self.transaction() as db:
            db.execute("DELETE FROM image_refs WHERE namespace = ? AND image_id = ?",
                       (namespace, image_id))
            db.execute("DELETE FROM image_namespaces WHERE namespace = ? AND image_id = ?",
                       (namespace, image_id))
            if db.execute("SELECT 1 FROM image_namespaces WHERE image_id = ?",
                          (image_id,)).fetchone():
                return False
            if db.execute("SELECT 1 FROM leases WHERE kind = 'image' AND resource = ?",
                          (image_id,)).fetchone():
                db.execute("UPDATE images SET retained = 1 WHERE id = ?", (image_id,))
                return False
            db.execute("DELETE FROM images WHERE id = ?", (image_id,))
            return True

    def layers(self, image_id: str) -> list[LayerRecord]:
        rows = self.connection().execute(
            "SELECT digest, media_type, blob_size, diff_id, chain_id FROM image_layers "
            "WHERE image_id = ? ORDER BY idx", (image_id,))
        return [LayerRecord(*r) for r in rows]

    def delete_image(self, image_id: str) -> None:
        """Remove the image, its layers' rows and its references (cascade)."""
        with self.transaction() as db:
            db.execute("DELETE FROM images WHERE id = ?", (image_id,))

    def children(self, image_id: str, *, namespace: str) -> list[str]:
        rows = self.connection().execute(
            "SELECT id FROM images JOIN image_namespaces n ON n.image_id = images.id "
            "WHERE parent = ? AND n.namespace = ?", (image_id, namespace))
        return [r[0] for r in rows]

    def referenced_blobs(self) -> set[str]:
        """Every blob an image (visible or retained) needs: manifest, config, layers."""
        conn = self.connection()
        blobs = {r[0] for r in conn.execute("SELECT digest FROM image_layers")}
        for image_id, manifest in conn.execute("SELECT id, manifest FROM images"):
            blobs.update((image_id, manifest))
        return blobs

    def referenced_chains(self) -> set[str]:
        """Every chain an image's layer or a container's writable layer stands on."""
        conn = self.connection()
        chains = {r[0] for r in conn.execute("SELECT chain_id FROM image_layers")}
        chains.update(r[0] for r in conn.execute(
            "WITH RECURSIVE below(chain) AS ("
            " SELECT parent FROM active_snapshots WHERE parent IS NOT NULL"
            " UNION SELECT s.parent FROM snapshots s JOIN below ON s.chain_id = below.chain"
            " WHERE s.parent IS NOT NULL) SELECT chain FROM below"))
        return chains

    # --- references -------------------------------------------------------------

    def refs(self, image_id: str | None = None, *, namespace: str | None) -> list[RefRecord]:
        """The references of ``namespace`` (None: of every namespace), of one image or
        of all."""
        where, args = [], []
        if image_id is not None:
            where.append("image_id = ?")
            args.append(image_id)
        if namespace is not None:
            where.append("namespace = ?")
            args.append(namespace)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self.connection().execute(
            f"SELECT ref, image_id, is_digest FROM image_refs {clause} ORDER BY ref", args)
        return [RefRecord(r[0], r[1], bool(r[2])) for r in rows]

    def ref(self, ref: str, *, namespace: str) -> str | None:
        row = self.connection().execute(
            "SELECT image_id FROM image_refs WHERE namespace = ? AND ref = ?",
            (namespace, ref)).fetchone()
        return row[0] if row else None

    def set_ref(self, ref: str, image_id: str, *, namespace: str, is_digest: bool = False,
                tag_time: str = "") -> str | None:
        """Point ``ref`` at ``image_id`` in ``namespace``, which the image joins;
        returns the image it pointed at before."""
        with self.transaction() as db:
            before = self.ref(ref, namespace=namespace)
            db.execute("INSERT OR REPLACE INTO image_refs VALUES (?,?,?,?)",
                       (namespace, ref, image_id, int(is_digest)))
            db.execute("INSERT OR IGNORE INTO image_namespaces VALUES (?, ?)",
                       (image_id, namespace))
            db.execute("UPDATE images SET retained = 0 WHERE id = ?", (image_id,))
            if tag_time:
                db.execute("UPDATE images SET last_tag_time = ? WHERE id = ?",
                           (tag_time, image_id))
        return before

    def delete_ref(self, ref: str, *, namespace: str) -> bool:
        with self.transaction() as db:
            return db.execute("DELETE FROM image_refs WHERE namespace = ? AND ref = ?",
                              (namespace, ref)).rowcount > 0

    # --- snapshots ---------------------------------------------------------------

    def snapshot(self, chain_id: str) -> SnapshotRecord | None:
        row = self.connection().execute(
            "SELECT chain_id, parent, diff_id, size FROM snapshots WHERE chain_id = ?",
            (chain_id,)).fetchone()
        return SnapshotRecord(*row) if row else None

    def snapshots(self) -> list[SnapshotRecord]:
        rows = self.connection().execute("SELECT chain_id, parent, diff_id, size FROM snapshots")
        return [SnapshotRecord(*r) for r in rows]

    def add_snapshot(self, record: SnapshotRecord) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO snapshots VALUES (?,?,?,?)",
                       (record.chain_id, record.parent, record.diff_id, record.size))

    def delete_snapshot(self, chain_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM snapshots WHERE chain_id = ?", (chain_id,))

    # --- active snapshots: containers' writable layers ------------------------------

    def active_snapshot(self, key: str) -> ActiveSnapshotRecord | None:
        row = self.connection().execute(
            "SELECT key, parent FROM active_snapshots WHERE key = ?", (key,)).fetchone()
        return ActiveSnapshotRecord(*row) if row else None

    def active_snapshot_keys(self) -> list[str]:
        return [r[0] for r in self.connection().execute("SELECT key FROM active_snapshots")]

    def add_active_snapshot(self, key: str, parent: str | None) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO active_snapshots VALUES (?, ?)", (key, parent))

    def delete_active_snapshot(self, key: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM active_snapshots WHERE key = ?", (key,))

    # --- leases -----------------------------------------------------------------------

    def add_lease(self, holder: str, kind: str, resource: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO leases VALUES (?, ?, ?)", (holder, kind, resource))

    def delete_leases(self, holder: str, kind: str, resource: str | None = None) -> None:
        with self.transaction() as db:
            if resource is None:
                db.execute("DELETE FROM leases WHERE holder = ? AND kind = ?", (holder, kind))
            else:
                db.execute("DELETE FROM leases WHERE holder = ? AND kind = ? AND resource = ?",
                           (holder, kind, resource))

    def lease_holders(self, kind: str, resource: str) -> list[str]:
        rows = self.connection().execute(
            "SELECT holder FROM leases WHERE kind = ? AND resource = ? ORDER BY holder",
            (kind, resource))
        return [r[0] for r in rows]

    def lease_resources(self, holder: str, kind: str) -> list[str]:
        rows = self.connection().execute(
            "SELECT resource FROM leases WHERE holder = ? AND kind = ? ORDER BY resource",
            (holder, kind))
        return [r[0] for r in rows]

    def lease_holder_ids(self) -> set[str]:
        """Everyone who holds a lease of any kind."""
        return {r[0] for r in self.connection().execute("SELECT DISTINCT holder FROM leases")}

    def leased(self, kind: str) -> set[str]:
        return {r[0] for r in self.connection().execute(
            "SELECT DISTINCT resource FROM leases WHERE kind = ?", (kind,))}

    # --- network addresses ------------------------------------------------------------

    def claim_address(self, network_id: str, address: str, owner: str) -> bool:
        """Take `address` on the network for `owner`; False when someone holds it."""
        try:
            with self.transaction() as db:
                db.execute("INSERT INTO ip_allocations VALUES (?, ?, ?)",
                           (network_id, address, owner))
        except sqlite3.IntegrityError:
            return False
        return True

    def claimed_addresses(self, network_id: str) -> set[str]:
        return {r[0] for r in self.connection().execute(
            "SELECT address FROM ip_allocations WHERE network_id = ?", (network_id,))}

    def release_addresses(self, owner: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM ip_allocations WHERE owner = ?", (owner,))

    # --- record tables ------------------------------------------------------------------

    def records(self, table: str) -> RecordTable:
        """The record table ``table`` (created if missing)."""
        return RecordTable(self, table)


class RecordTable:
    """One JSON document per row, keyed by ID, with a unique name and the document's
    schema version, for services that keep their records in moor.db (containers).

    The owner encodes and decodes its documents and migrates old versions when it
    loads them; this layer only stores them, one transaction per write."""

    def __init__(self, metadata: Metadata, table: str) -> None:
        if not _TABLE_NAME.match(table):
            raise ValueError(f"invalid table name {table!r}")
        self.metadata = metadata
        self.table = table
        with metadata.transaction() as db:
            _create_record_table(db, table)

    def put(self, record_id: str, name: str, version: int, doc: str) -> None:
        """Insert or replace; sqlite3.IntegrityError when another row has the name."""
        # An upsert on the ID only: INSERT OR REPLACE would also resolve a clash on the
        # name by deleting the other row.
        with self.metadata.transaction() as db:
            db.execute(f"INSERT INTO {self.table} (id, name, version, doc) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT(id) DO UPDATE SET name = excluded.name, "
                       "version = excluded.version, doc = excluded.doc",
                       (record_id, name, version, doc))

    def delete(self, record_id: str) -> None:
        with self.metadata.transaction() as db:
            db.execute(f"DELETE FROM {self.table} WHERE id = ?", (record_id,))

    def load_all(self) -> list[tuple[str, str, int, str]]:
        """Every row as (id, name, version, doc)."""
        return list(self.metadata.connection().execute(
            f"SELECT id, name, version, doc FROM {self.table}"))


def _create_record_table(db: sqlite3.Connection, table: str) -> None:
    db.execute(f"CREATE TABLE IF NOT EXISTS {table} (id TEXT PRIMARY KEY, "
               "name TEXT NOT NULL UNIQUE, version INTEGER NOT NULL DEFAULT 0, "
               "doc TEXT NOT NULL)")


def _to_v1(db: sqlite3.Connection) -> None:
    """Leases and active snapshots. A database of schema 0 may hold a containers table
    (id, name, doc: the Engine API inspect document) made by the container store
    before this layer owned the file: its rows get version 0, and each container a
    lease on its image and on the volumes it mounts, which in-use callbacks
    protected before."""
    for statement in _LEASES:
        db.execute(statement)
    columns = [r[1] for r in db.execute("PRAGMA table_info(containers)")]
    if not columns:
        return
    if "version" not in columns:
        db.execute("ALTER TABLE containers ADD COLUMN version INTEGER NOT NULL DEFAULT 0")
    for container_id, doc in db.execute("SELECT id, doc FROM containers").fetchall():
        try:
            inspect = json.loads(doc)
        except ValueError:
            continue  # the container service reports a corrupt record when it loads it
        if inspect.get("Image"):
            db.execute("INSERT OR IGNORE INTO leases VALUES (?, 'image', ?)",
                       (container_id, inspect["Image"]))
        for mount in inspect.get("Mounts") or ():
            if mount.get("Type") == "volume" and mount.get("Name"):
                db.execute("INSERT OR IGNORE INTO leases VALUES (?, 'volume', ?)",
                           (container_id, mount["Name"]))


def _to_v2(db: sqlite3.Connection) -> None:
    """Network addresses: one row per address in use, so IPAM never hands one out twice
    and finds its allocations again after a restart."""
    db.execute("CREATE TABLE IF NOT EXISTS ip_allocations (network_id TEXT NOT NULL, "
               "address TEXT NOT NULL, owner TEXT NOT NULL, "
               "PRIMARY KEY (network_id, address))")
    db.execute("CREATE INDEX IF NOT EXISTS ip_allocations_owner ON ip_allocations (owner)")


def _to_v3(db: sqlite3.Connection) -> None:
    """Namespaces: every reference and every image not retained so far is the Docker
    API's."""
    for statement in _NAMESPACES:
        db.execute(statement)
    db.execute("INSERT INTO image_refs_v3 SELECT ?, ref, image_id, is_digest FROM image_refs",
               (DOCKER_NAMESPACE,))
    db.execute("DROP TABLE image_refs")
    db.execute("ALTER TABLE image_refs_v3 RENAME TO image_refs")
    db.execute("CREATE INDEX IF NOT EXISTS image_refs_image ON image_refs(image_id)")
    db.execute("INSERT INTO image_namespaces SELECT id, ? FROM images WHERE retained = 0",
               (DOCKER_NAMESPACE,))


_MIGRATIONS = (_to_v1, _to_v2, _to_v3)
