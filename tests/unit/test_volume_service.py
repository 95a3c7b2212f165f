"""The volume service without a daemon: records that outlive it, dockerd's events,
usage for `system df`, the filters of list and prune, leases refusing removal."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from moorage.daemon.events.bus import Event, EventBus
from moorage.daemon.volumes.service import VolumeService
from moorage.errors import Conflict, InvalidParameter, NotFound
from moorage.model.volumes import VolumeCreateRequest
from moorage.store.metadata import Metadata


def service(root: Path, events: EventBus | None = None) -> VolumeService:
    return VolumeService(str(root), Metadata(str(root / "moor.db")), events or EventBus())


def test_records_outlive_the_service(tmp_path: Path) -> None:
    first = service(tmp_path)
    made = first.create(VolumeCreateRequest("data", "", {}, {"a": "1"}))
    Path(made.mountpoint, "f").write_text("kept")
    again = service(tmp_path)
    found = again.inspect("data")
    assert found.record == made.record
    assert Path(found.mountpoint, "f").read_text() == "kept"


def test_directory_of_an_older_daemon_is_adopted(tmp_path: Path) -> None:
    os.makedirs(tmp_path / "volumes" / "old" / "_data")
    found = service(tmp_path).inspect("old")
    assert found.record.labels is None and found.record.options is None


def test_events_and_usage(tmp_path: Path) -> None:
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe(seen.append)
    volumes = service(tmp_path, bus)
    name = volumes.for_container("")
    volumes.leases.acquire("c1", name)
    volumes.mount(name, "c1", "/d", True, "")
    Path(volumes.path(name), "f").write_bytes(b"x" * 10)
    assert [(u.record.name, u.size, u.ref_count) for u in volumes.usage()] == [(name, 10, 1)]
    with pytest.raises(Conflict, match=rf"remove {name}: volume is in use - \[c1\]"):
        volumes.remove(name)
    volumes.unmount(name, "c1")
    volumes.leases.release("c1")
    volumes.remove(name)
    assert [(e.action, e.actor_id) for e in seen] == [
        ("create", name), ("mount", name), ("unmount", name), ("destroy", name)]
    assert seen[1].attributes == {"container": "c1", "destination": "/d", "driver": "local",
                                  "propagation": "", "read/write": "true"}


def test_filters_and_prune(tmp_path: Path) -> None:
    volumes = service(tmp_path)
    volumes.create(VolumeCreateRequest("named", "", None, {"keep": ""}))
    volumes.create(VolumeCreateRequest("opts", "", {"type": "tmpfs", "device": "tmpfs"}, None))
    anonymous = volumes.for_container("")
    names = lambda wanted: {v.record.name for v in volumes.volumes(wanted)}  # noqa: E731
    assert names({"label": ["keep"]}) == {"named"}
    assert names({"name": ["am"]}) == {"named"}
    assert names({"dangling": ["true"]}) == {"named", "opts", anonymous}
    with pytest.raises(InvalidParameter, match="Invalid filter 'bogus'"):
        volumes.volumes({"bogus": ["1"]})
    with pytest.raises(InvalidParameter, match="Invalid filter 'all'"):
        volumes.prune({"all": ["1"]}, api_1_42=False)
    assert volumes.prune({}, api_1_42=True).deleted == [anonymous]
    assert volumes.prune({"label!": ["keep"], "all": ["1"]}, api_1_42=True).deleted == []
    assert volumes.prune({}, api_1_42=False).deleted == ["named"]  # options are never pruned
    with pytest.raises(NotFound, match="get named: no such volume"):
        volumes.inspect("named")


def test_events_from_worker_threads_reach_the_loop(tmp_path: Path) -> None:
    """The API calls the service in worker threads; subscribers (the /events queues)
    are asyncio objects and get their events on the loop's thread."""
    async def scenario() -> list[str]:
        bus = EventBus()
        threads: list[str] = []
        bus.subscribe(lambda _event: threads.append(threading.current_thread().name))
        volumes = service(tmp_path, bus)
        await asyncio.to_thread(volumes.for_container, "")
        for _ in range(10):
            if threads:
                break
            await asyncio.sleep(0.01)
        return threads

    assert asyncio.run(scenario()) == [threading.current_thread().name]
