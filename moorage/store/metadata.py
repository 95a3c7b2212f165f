"""Image metadata in SQLite (<data-root>/moor.db, WAL): images, references, snapshots.

Every change is one transaction (BEGIN IMMEDIATE, so writers queue instead of
failing midway). Connections are per thread: the daemon calls in from its event
loop and from worker threads, and a sqlite3 connection must stay in its thread.
Other services keep their own tables in the same file; these tables never refer
to theirs.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

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


_IMAGE_COLUMNS = "id, manifest, parent, top_chain, size, created, last_tag_time, retained"


def _image(row: tuple) -> ImageRecord:
    return ImageRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6], bool(row[7]))


class Metadata:
    """The image tables of moor.db; safe to share between threads."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        # executescript commits on its own; every statement is IF NOT EXISTS.
        self._conn().executescript(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
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
        conn = self._conn()
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # --- images ---------------------------------------------------------------

    def image(self, image_id: str) -> ImageRecord | None:
        row = self._conn().execute(
            f"SELECT {_IMAGE_COLUMNS} FROM images WHERE id = ?", (image_id,)).fetchone()
        return _image(row) if row else None

    def images(self, *, retained: bool = False) -> list[ImageRecord]:
        """Visible images, newest first; with ``retained`` the hidden ones too."""
        where = "" if retained else "WHERE retained = 0"
        rows = self._conn().execute(
            f"SELECT {_IMAGE_COLUMNS} FROM images {where} ORDER BY created DESC, id")
        return [_image(r) for r in rows]

    def image_ids_with_prefix(self, hex_prefix: str) -> list[str]:
        rows = self._conn().execute(
            "SELECT id FROM images WHERE retained = 0 AND substr(id, 8, ?) = ?",
            (len(hex_prefix), hex_prefix))
        return [r[0] for r in rows]

    def count_images(self) -> int:
        return self._conn().execute(
            "SELECT count(*) FROM images WHERE retained = 0").fetchone()[0]

    def add_image(self, record: ImageRecord, layers: list[LayerRecord]) -> bool:
        """Insert an image and its layers; False (and no change) if it exists."""
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM images WHERE id = ?", (record.id,)).fetchone():
                db.execute("UPDATE images SET retained = 0 WHERE id = ?", (record.id,))
                return False
            db.execute(f"INSERT INTO images ({_IMAGE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
                       (record.id, record.manifest, record.parent, record.top_chain,
                        record.size, record.created, record.last_tag_time,
                        int(record.retained)))
            db.executemany(
                "INSERT INTO image_layers VALUES (?,?,?,?,?,?,?)",
                [(record.id, i, lay.digest, lay.media_type, lay.blob_size, lay.diff_id,
                  lay.chain_id) for i, lay in enumerate(layers)])
        return True

    def layers(self, image_id: str) -> list[LayerRecord]:
        rows = self._conn().execute(
            "SELECT digest, media_type, blob_size, diff_id, chain_id FROM image_layers "
            "WHERE image_id = ? ORDER BY idx", (image_id,))
        return [LayerRecord(*r) for r in rows]

    def set_retained(self, image_id: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE images SET retained = 1 WHERE id = ?", (image_id,))

    def delete_image(self, image_id: str) -> None:
        """Remove the image, its layers' rows and its references (cascade)."""
        with self.transaction() as db:
            db.execute("DELETE FROM images WHERE id = ?", (image_id,))

    def children(self, image_id: str) -> list[str]:
        rows = self._conn().execute(
            "SELECT id FROM images WHERE parent = ? AND retained = 0", (image_id,))
        return [r[0] for r in rows]

    def referenced_blobs(self) -> set[str]:
        """Every blob an image (visible or retained) needs: manifest, config, layers."""
        conn = self._conn()
        blobs = {r[0] for r in conn.execute("SELECT digest FROM image_layers")}
        for image_id, manifest in conn.execute("SELECT id, manifest FROM images"):
            blobs.update((image_id, manifest))
        return blobs

    def referenced_chains(self) -> set[str]:
        return {r[0] for r in self._conn().execute("SELECT chain_id FROM image_layers")}

    # --- references -------------------------------------------------------------

    def refs(self, image_id: str | None = None) -> list[RefRecord]:
        if image_id is None:
            rows = self._conn().execute(
                "SELECT ref, image_id, is_digest FROM image_refs ORDER BY ref")
        else:
            rows = self._conn().execute(
                "SELECT ref, image_id, is_digest FROM image_refs WHERE image_id = ? "
                "ORDER BY ref", (image_id,))
        return [RefRecord(r[0], r[1], bool(r[2])) for r in rows]

    def ref(self, ref: str) -> str | None:
        row = self._conn().execute(
            "SELECT image_id FROM image_refs WHERE ref = ?", (ref,)).fetchone()
        return row[0] if row else None

    def set_ref(self, ref: str, image_id: str, *, is_digest: bool = False,
                tag_time: str = "") -> str | None:
        """Point ``ref`` at ``image_id``; returns the image it pointed at before."""
        with self.transaction() as db:
            before = self.ref(ref)
            db.execute("INSERT OR REPLACE INTO image_refs VALUES (?,?,?)",
                       (ref, image_id, int(is_digest)))
            if tag_time:
                db.execute("UPDATE images SET last_tag_time = ? WHERE id = ?",
                           (tag_time, image_id))
        return before

    def delete_ref(self, ref: str) -> bool:
        with self.transaction() as db:
            return db.execute("DELETE FROM image_refs WHERE ref = ?", (ref,)).rowcount > 0

    # --- snapshots ---------------------------------------------------------------

    def snapshot(self, chain_id: str) -> SnapshotRecord | None:
        row = self._conn().execute(
            "SELECT chain_id, parent, diff_id, size FROM snapshots WHERE chain_id = ?",
            (chain_id,)).fetchone()
        return SnapshotRecord(*row) if row else None

    def snapshots(self) -> list[SnapshotRecord]:
        rows = self._conn().execute("SELECT chain_id, parent, diff_id, size FROM snapshots")
        return [SnapshotRecord(*r) for r in rows]

    def add_snapshot(self, record: SnapshotRecord) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO snapshots VALUES (?,?,?,?)",
                       (record.chain_id, record.parent, record.diff_id, record.size))

    def delete_snapshot(self, chain_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM snapshots WHERE chain_id = ?", (chain_id,))
