"""Volumes as plain directories, laid out as dockerd's `local` driver lays them out,
with their records in the metadata layer.

<data-root>/volumes/<name>/_data is the volume; its record (driver, labels, options,
creation time, anonymous or not) is a row of the `volumes` record table in moor.db.
A directory without a record (made by an older moord) is adopted at open with its
directory's time. The containers that mount a volume lease it (store/leases.py); a
leased volume cannot be removed. Creation and removal go through a temporary name
and one rename, so a crash never leaves a half-made or half-removed volume visible;
the record is written after the directory appears and dropped before it goes.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import threading
from dataclasses import asdict

from moorage.errors import Conflict, InvalidParameter, NotFound
from moorage.model.volumes import VOLUME_RECORD_VERSION, VolumeRecord
from moorage.store.leases import Leases
from moorage.store.metadata import Metadata

# moby volume/local: volumeNameRegex and validateName.
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_TMP_PREFIX = ".tmp-"


def validate_name(name: str) -> None:
    """InvalidParameter in dockerd's words for a name the local driver refuses."""
    if len(name) == 1:
        raise InvalidParameter(f"create {name}: volume name is too short, names should "
                               "be at least two alphanumeric characters")
    if not _NAME.match(name):
        raise InvalidParameter(
            f'create {name}: "{name}" includes invalid characters for a local volume '
            'name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass '
            "a host directory, use absolute path")


class VolumeStore:
    def __init__(self, data_root: str, metadata: Metadata) -> None:
        self.root = os.path.join(data_root, "volumes")
        # 0701 as dockerd's: others may traverse to a volume's _data, not list the names.
        os.makedirs(self.root, mode=0o701, exist_ok=True)
        self.leases = Leases(metadata, "volume")
        self._table = metadata.records("volumes")
        self._lock = threading.Lock()
        self._records: dict[str, VolumeRecord] = {}
        for _id, _name, _version, doc in self._table.load_all():
            record = VolumeRecord(**json.loads(doc))
            self._records[record.name] = record
        for entry in os.listdir(self.root):
            if entry.startswith(_TMP_PREFIX):
                shutil.rmtree(os.path.join(self.root, entry), ignore_errors=True)
            elif entry not in self._records and os.path.isdir(self.path(entry)):
                created = os.stat(os.path.join(self.root, entry)).st_mtime_ns
                self._put(VolumeRecord(name=entry, created_ns=created,
                                       anonymous=bool(re.fullmatch(r"[0-9a-f]{64}", entry))))
        for name in list(self._records):
            if not os.path.isdir(self.path(name)):  # removed by hand: the record goes too
                self._drop(name)

    def path(self, name: str) -> str:
        """The host directory a container mounts for volume `name` (it need not exist)."""
        return os.path.join(self.root, name, "_data")

    def get(self, name: str) -> VolumeRecord:
        record = self._records.get(name)
        if record is None:
            raise NotFound(f"get {name}: no such volume")
        return record

    def find(self, name: str) -> VolumeRecord | None:
        return self._records.get(name)

    def all(self) -> list[VolumeRecord]:
        return list(self._records.values())

    def create(self, record: VolumeRecord) -> tuple[VolumeRecord, bool]:
        """The volume `record.name`, made if missing (idempotent: an existing one is
        returned as it is, as dockerd's). True when it was made."""
        with self._lock:
            existing = self._records.get(record.name)
            if existing is not None:
                return existing, False
            tmp = os.path.join(self.root, _TMP_PREFIX + secrets.token_hex(8))
            os.makedirs(os.path.join(tmp, "_data"), mode=0o755)
            os.chmod(tmp, 0o701)
            try:
                os.rename(tmp, os.path.join(self.root, record.name))
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            try:
                self._put(record)
            except BaseException:
                shutil.rmtree(os.path.join(self.root, record.name), ignore_errors=True)
                raise
            return record, True

    def remove(self, name: str) -> VolumeRecord:
        """Delete the volume and its content. NotFound when there is none; Conflict while
        a container (running or not) holds a lease on it."""
        with self._lock:
            record = self.get(name)
            users = self.leases.holders(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            if os.path.ismount(self.path(name)):
                # A device still mounted (a bind of a host directory): its content is not
                # the volume's to delete.
                raise Conflict(f"remove {name}: volume is in use - its device is still "
                               "mounted")
            tmp = os.path.join(self.root, _TMP_PREFIX + secrets.token_hex(8))
            self._drop(name)
            os.rename(os.path.join(self.root, name), tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        return record

    def _put(self, record: VolumeRecord) -> None:
        self._table.put(record.name, record.name, VOLUME_RECORD_VERSION,
                        json.dumps(asdict(record)))
        self._records[record.name] = record

    def _drop(self, name: str) -> None:
        self._table.delete(name)
        self._records.pop(name, None)


def new_anonymous_name() -> str:
    """A random 64-hex name, as dockerd gives an anonymous volume."""
    return secrets.token_hex(32)
