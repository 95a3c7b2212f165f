"""Container records in moor.db's `containers` record table (store/metadata.py).

One row per container: its id, its unique name, the record's schema version and
the record as JSON (model.plain). Each write is one transaction (WAL), so a crash
leaves either the old or the new record. Rows of version 0 hold what the store
kept before records existed (the API's inspect document); they are converted and
written back when loaded. A row that cannot be read is logged and left out, never
served.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace

from moorage.model.config import ContainerConfig, HostConfig, MountPoint
from moorage.model.plain import from_plain, to_plain
from moorage.model.records import SCHEMA_VERSION, ContainerRecord, ContainerState
from moorage.model.times import parse_rfc3339_ns
from moorage.runtime import cgroups
from moorage.store.metadata import Metadata

log = logging.getLogger("moord.containers")

# Version 0: the Engine API inspect document of the store before records.
_DOCUMENT_VERSION = 0

# Upgrades of a record's plain form from version N to N + 1 (N >= 1), applied in turn.
_UPGRADES: dict[int, Callable[[dict], dict]] = {}


class ContainerStore:
    def __init__(self, metadata: Metadata) -> None:
        self._table = metadata.records("containers")

    def load_all(self) -> list[ContainerRecord]:
        records = []
        for container_id, _, version, text in self._table.load_all():
            try:
                if version == _DOCUMENT_VERSION:
                    record = record_from_document(json.loads(text))
                    self.save(record)
                else:
                    record = _load(version, json.loads(text))
            except (ValueError, TypeError, KeyError) as err:
                log.error("container %s: its record cannot be read, left out: %s",
                          container_id, err)
                continue
            records.append(record)
        return records

    def save(self, record: ContainerRecord) -> None:
        """Insert or update by id; sqlite3.IntegrityError when another container has the
        name."""
        self._table.put(record.id, record.name, SCHEMA_VERSION, json.dumps(to_plain(record)))

    def delete(self, container_id: str) -> None:
        self._table.delete(container_id)


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
                            or ("private" if cgroups.unified() else "host")),
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
