"""Container records in the data-root's SQLite database (table `container_records`).

One row per container: its id, its unique name, the record's schema version and
the record as JSON (model.plain). Each write is one transaction (WAL), so a crash
leaves either the old or the new record. Rows of the table before records existed
(`containers(id, name, doc)`, the API's inspect document) are migrated when the
store opens; a row that cannot be read is logged and left out, never served.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import replace

from moorage.daemon.containers.setup import CGROUP_V2
from moorage.model.config import ContainerConfig, HostConfig, MountPoint
from moorage.model.plain import from_plain, to_plain
from moorage.model.records import SCHEMA_VERSION, ContainerRecord, ContainerState
from moorage.model.times import parse_rfc3339_ns

log = logging.getLogger("moord.containers")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS container_records (
    id      TEXT PRIMARY KEY,
    name    TEXT NOT NULL UNIQUE,
    version INTEGER NOT NULL,
    record  TEXT NOT NULL
)
"""

# Upgrades of a record's plain form from version N to N + 1, applied in turn.
_UPGRADES: dict[int, Callable[[dict], dict]] = {}


class ContainerStore:
    def __init__(self, data_root: str) -> None:
        self._db = sqlite3.connect(os.path.join(data_root, "moor.db"), isolation_level=None,
                                   check_same_thread=False, timeout=30)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        # As the image tables (store/metadata.py): WAL + NORMAL survives a process
        # crash (kill -9), the guarantee DESIGN.md asks for; FULL added an fdatasync
        # to every commit, on the event loop: 0.3-2.7 ms each, four per `run --rm`.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._migrate_documents()

    def _migrate_documents(self) -> None:
        """Rows of the old `containers` table, one transaction: all move or none."""
        found = self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                 "AND name = 'containers'").fetchone()
        if not found:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for container_id, doc in self._db.execute(
                        "SELECT id, doc FROM containers").fetchall():
                    try:
                        record = record_from_document(json.loads(doc))
                    except (ValueError, TypeError, KeyError) as err:
                        log.error("container %s: its old record cannot be read, left out: %s",
                                  container_id, err)
                        continue
                    self._db.execute(
                        "INSERT OR REPLACE INTO container_records (id, name, version, record) "
                        "VALUES (?, ?, ?, ?)", (record.id, record.name, SCHEMA_VERSION,
                                                json.dumps(to_plain(record))))
                self._db.execute("DROP TABLE containers")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def load_all(self) -> list[ContainerRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, version, record FROM container_records").fetchall()
        records = []
        for container_id, version, text in rows:
            try:
                records.append(_load(version, json.loads(text)))
            except (ValueError, TypeError, KeyError) as err:
                log.error("container %s: its record cannot be read, left out: %s",
                          container_id, err)
        return records

    def save(self, record: ContainerRecord) -> None:
        """Insert or update by id; sqlite3.IntegrityError when another container has the
        name (OR REPLACE would silently delete that other container's row)."""
        with self._lock:
            self._db.execute(
                "INSERT INTO container_records (id, name, version, record) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET name = excluded.name, "
                "version = excluded.version, record = excluded.record",
                (record.id, record.name, SCHEMA_VERSION, json.dumps(to_plain(record))))

    def delete(self, container_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM container_records WHERE id = ?", (container_id,))

    def close(self) -> None:
        self._db.close()


def _load(version: int, plain: dict) -> ContainerRecord:
    if version > SCHEMA_VERSION:
        raise ValueError(f"schema version {version} is newer than this engine's "
                         f"({SCHEMA_VERSION})")
    for step in range(version, SCHEMA_VERSION):
        plain = _UPGRADES[step](plain)
    return from_plain(ContainerRecord, plain)


def record_from_document(doc: dict) -> ContainerRecord:
    """A record from the inspect document the store kept before version 1."""
    state = doc.get("State") or {}
    # Before records, a container had a cgroup namespace exactly when the host had v2.
    host = from_plain(HostConfig, doc.get("HostConfig") or {}, wire=True)
    return ContainerRecord(
        id=doc["Id"], name=doc["Name"], created=parse_rfc3339_ns(doc["Created"]),
        path=doc.get("Path", ""), args=tuple(doc.get("Args") or ()), image=doc["Image"],
        config=from_plain(ContainerConfig, doc.get("Config") or {}, wire=True),
        host_config=replace(host, cgroupns_mode=host.cgroupns_mode
                            or ("private" if CGROUP_V2 else "host")),
        mounts=tuple(from_plain(MountPoint, m, wire=True) for m in doc.get("Mounts") or ()),
        state=ContainerState(
            status=state.get("Status", "created"), running=bool(state.get("Running")),
            paused=bool(state.get("Paused")), restarting=bool(state.get("Restarting")),
            oom_killed=bool(state.get("OOMKilled")), dead=bool(state.get("Dead")),
            pid=int(state.get("Pid", 0)), exit_code=int(state.get("ExitCode", 0)),
            error=str(state.get("Error", "")),
            started_at=parse_rfc3339_ns(state.get("StartedAt", "")),
            finished_at=parse_rfc3339_ns(state.get("FinishedAt", ""))),
        resolv_conf_path=doc.get("ResolvConfPath", ""),
        hostname_path=doc.get("HostnamePath", ""), hosts_path=doc.get("HostsPath", ""),
        log_path=doc.get("LogPath", ""), restart_count=int(doc.get("RestartCount", 0)))
