"""Every container record by id and by name, and their persistence.

The registry is the only writer of the store: a record changes here and in the
database together.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from moorage.daemon.containers.names import generate_name
from moorage.daemon.containers.store import ContainerStore
from moorage.errors import Conflict, InvalidParameter, NotFound, SystemFailure
from moorage.model.records import ContainerRecord

log = logging.getLogger("moord.containers")


class Registry:
    def __init__(self, store: ContainerStore) -> None:
        self._store = store
        self._records: dict[str, ContainerRecord] = {}
        self._names: dict[str, str] = {}  # "/name" → id

    def load(self) -> list[ContainerRecord]:
        for record in self._store.load_all():
            self._records[record.id] = record
            self._names[record.name] = record.id
        return list(self._records.values())

    def all(self) -> Iterable[ContainerRecord]:
        return list(self._records.values())

    def find(self, container_id: str) -> ContainerRecord | None:
        return self._records.get(container_id)

    def get(self, ref: str) -> ContainerRecord:
        """By full id, name (with or without '/') or unique id prefix; NotFound otherwise."""
        if ref in self._records:
            return self._records[ref]
        by_name = self._names.get("/" + ref.lstrip("/"))
        if by_name in self._records:
            return self._records[by_name]
        matches = [r for r in self._records.values() if ref and r.id.startswith(ref)]
        if len(matches) > 1:
            raise InvalidParameter(f"Multiple IDs found with provided prefix: {ref}")
        if not matches:
            raise NotFound(f"No such container: {ref}")
        return matches[0]

    def check_name_free(self, name: str) -> None:
        other = self._names.get(name)
        if other is not None:
            raise Conflict(f'Conflict. The container name "{name}" is already in use by '
                           f'container "{other}". You have to remove (or rename) that '
                           "container to be able to reuse that name.")

    def new_name(self) -> str:
        return "/" + generate_name(lambda n: "/" + n in self._names)

    def reserve(self, name: str, container_id: str) -> None:
        """Hold `name` for a container being created (Conflict when taken), so that two
        creates of one name cannot both pass the check while they prepare."""
        self.check_name_free(name)
        self._names[name] = container_id

    def release(self, name: str, container_id: str) -> None:
        if self._names.get(name) == container_id and container_id not in self._records:
            del self._names[name]

    def put(self, record: ContainerRecord, *, even_unsaved: bool = False) -> None:
        """Saves `record` (new, changed or renamed); sqlite3.IntegrityError for a taken name.

        `even_unsaved`: the record tells what happened whatever the disk says (a process
        exited), so it is kept even when a full disk refuses it; the daemon's next start
        finds the shim gone and saves the exit then."""
        old = self._records.get(record.id)
        try:
            self._store.save(record)
        except SystemFailure as err:
            if not even_unsaved:
                raise
            log.error("container %s: %s: its state is kept in memory only", record.id, err)
        if old is not None and old.name != record.name \
                and self._names.get(old.name) == record.id:
            del self._names[old.name]
        self._records[record.id] = record
        self._names[record.name] = record.id

    def drop(self, container_id: str) -> None:
        record = self._records.pop(container_id, None)
        if record is not None:
            if self._names.get(record.name) == container_id:
                del self._names[record.name]
            self._store.delete(container_id)
