"""The volume service: the `/volumes` API's backend and what containers ask of volumes.

It keeps the store's records and directories, the local driver's mounts (a volume
with a device is mounted on its _data while at least one container uses it, and
unmounted with the last), and publishes dockerd's volume events: create (also when a
container names an existing volume, as dockerd does), mount, unmount, destroy.
Calls are blocking (disk and mount work): the API runs them in a worker thread.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Mapping

from moorage.daemon.events.bus import EventBus
from moorage.daemon.volumes import filters, local
from moorage.daemon.volumes.store import VolumeStore, new_anonymous_name, validate_name
from moorage.errors import Conflict, InvalidParameter, NotFound
from moorage.model.times import now_ns
from moorage.model.volumes import (
    VolumeCreateRequest,
    VolumeInfo,
    VolumePruneReport,
    VolumeRecord,
)
from moorage.store.metadata import Metadata

DRIVER = "local"


class VolumeService:
    def __init__(self, data_root: str, metadata: Metadata, events: EventBus) -> None:
        self.store = VolumeStore(data_root, metadata)
        self.leases = self.store.leases
        self.events = events
        # Most calls come from worker threads; the bus's subscribers live on the loop.
        self._loop = _running_loop()
        self._lock = threading.Lock()
        self._users: dict[str, set[str]] = {}   # volume -> containers it is mounted for

    def restore(self, running: dict[str, set[str]]) -> None:
        """At daemon start: the containers still running (live-restore) keep their
        volumes' devices mounted and count as users; a device mount nobody uses any more
        (a daemon that died) is unmounted. `running`: volume name -> container IDs."""
        with self._lock:
            for record in self.store.all():
                if not local.needs_mount(record.options):
                    continue
                users = running.get(record.name, set())
                if users and os.path.ismount(self.path(record.name)):
                    self._users[record.name] = set(users)
                elif os.path.ismount(self.path(record.name)):
                    local.unmount(self.path(record.name))

    def path(self, name: str) -> str:
        return self.store.path(name)

    # --- the API's calls ---------------------------------------------------------------

    def create(self, request: VolumeCreateRequest) -> VolumeInfo:
        name = request.name or new_anonymous_name()
        record = self._ensure(name, request.driver, request.driver_opts, request.labels,
                              anonymous=False)
        return self._info(record)

    def inspect(self, name: str) -> VolumeInfo:
        return self._info(self.store.get(name))

    def volumes(self, wanted: dict[str, list[str]]) -> list[VolumeInfo]:
        keep = filters.list_selector(wanted)
        used = self.leases.held()
        return [self._info(r) for r in sorted(self.store.all(), key=lambda r: r.created_ns)
                if keep(r, r.name in used)]

    def remove(self, name: str, force: bool = False) -> None:
        """NotFound (nothing with `force`), Conflict while a container uses it."""
        try:
            record = self.store.remove(name)
        except NotFound:
            if force:
                return
            raise
        self._publish("destroy", name, {"driver": record.driver})

    def prune(self, wanted: dict[str, list[str]], api_1_42: bool) -> VolumePruneReport:
        keep = filters.prune_selector(wanted, api_1_42)
        used = self.leases.held()
        deleted, reclaimed = [], 0
        for record in self.store.all():
            if not keep(record, record.name in used):
                continue
            size = _size(self.path(record.name))
            try:
                self.remove(record.name)
            except (NotFound, Conflict):  # removed or taken meanwhile
                continue
            deleted.append(record.name)
            reclaimed += size
        return VolumePruneReport(deleted, reclaimed)

    def is_anonymous(self, name: str) -> bool:
        record = self.store.find(name)
        return record is not None and record.anonymous

    def usage(self) -> list[VolumeInfo]:
        """Every volume with its size in bytes and the number of containers using it
        (dockerd's UsageData, for `system df`)."""
        return [VolumeInfo(r, self.path(r.name), _size(self.path(r.name)),
                           len(self.leases.holders(r.name))) for r in self.store.all()]

    # --- containers' calls -------------------------------------------------------------

    def for_container(self, name: str, driver: str = "", options: dict[str, str] | None = None,
                      labels: dict[str, str] | None = None) -> str:
        """The volume a container mounts, made if missing (a new anonymous one when
        `name` is empty); its name. The create event is published either way."""
        record = self._ensure(name or new_anonymous_name(), driver, options, labels,
                              anonymous=not name)
        return record.name

    def mount(self, name: str, container_id: str, destination: str, rw: bool,
              propagation: str, quiet: bool = False) -> None:
        """Mount the volume's device (if it has one) for a starting container; `quiet`
        (no event) for the copy-up at create."""
        record = self.store.get(name)
        with self._lock:
            users = self._users.setdefault(name, set())
            if not users and local.needs_mount(record.options):
                try:
                    local.mount(record.options or {}, self.path(name))
                except Exception:
                    self._users.pop(name, None)
                    raise
            users.add(container_id)
        if quiet:
            return
        self._publish("mount", name, {
            "container": container_id, "destination": destination, "driver": record.driver,
            "propagation": propagation, "read/write": "true" if rw else "false"})

    def unmount(self, name: str, container_id: str, quiet: bool = False) -> None:
        """The container stopped: the last user unmounts the device."""
        record = self.store.find(name)
        with self._lock:
            users = self._users.get(name, set())
            if container_id not in users:
                return
            users.discard(container_id)
            if not users:
                self._users.pop(name, None)
                if record is not None and local.needs_mount(record.options):
                    local.unmount(self.path(name))
        if quiet:
            return
        self._publish("unmount", name, {
            "container": container_id, "driver": record.driver if record else DRIVER})

    # -----------------------------------------------------------------------------------

    def _ensure(self, name: str, driver: str, options: dict[str, str] | None,
                labels: dict[str, str] | None, anonymous: bool) -> VolumeRecord:
        if driver not in ("", DRIVER):
            raise NotFound(f"create {name}: error looking up volume plugin {driver}: "
                           f'plugin "{driver}" not found')
        validate_name(name)
        existing = self.store.find(name)
        if existing is None:
            try:
                local.validate(options or {})
            except InvalidParameter as err:
                raise InvalidParameter(f"create {name}: {err}") from None
            existing, _ = self.store.create(VolumeRecord(
                name=name, created_ns=now_ns(), driver=DRIVER,
                labels=dict(labels) if labels is not None else None,
                options=dict(options) if options is not None else None,
                anonymous=anonymous))
        self._publish("create", name, {"driver": existing.driver})
        return existing

    def _publish(self, action: str, name: str, attributes: Mapping[str, str]) -> None:
        loop = self._loop
        if loop is None or _running_loop() is loop:
            self.events.publish("volume", action, name, attributes)
        else:
            loop.call_soon_threadsafe(self.events.publish, "volume", action, name, attributes)

    def _info(self, record: VolumeRecord) -> VolumeInfo:
        return VolumeInfo(record, self.path(record.name))


def _size(path: str) -> int:
    """Bytes of the regular files under `path`, each inode once (moby's directory.Size)."""
    total, seen = 0, set()
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                info = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            total += info.st_size
    return total


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
