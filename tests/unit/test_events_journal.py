"""The events journal and filters: replay across a restart, bounded size, dockerd's
matching rules."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from moorage.daemon.events import filters
from moorage.daemon.events.bus import Event, EventBus
from moorage.daemon.events.journal import Journal
from moorage.errors import InvalidParameter


def _event(n: int, action: str = "start", **attrs: str) -> Event:
    return Event("container", action, f"{n:064x}", {"name": f"c{n}", **attrs}, n * 1000)


def test_journal_replays_after_restart_and_stays_bounded(tmp_path: Path) -> None:
    path = str(tmp_path / "events.log")
    journal = Journal(path, limit=10)
    for n in range(1, 36):
        journal.append(_event(n))
    journal.close()
    with open(path, "ab") as f:
        f.write(b'["container", "torn')  # a crash mid-write
    again = Journal(path, limit=10)  # the daemon's next start
    kept = again.replay(0)
    assert [e.time_ns for e in kept] == [n * 1000 for n in range(21, 36)]
    assert [e.actor_id for e in again.replay(25_000, 27_000)] == \
        [f"{n:064x}" for n in (25, 26, 27)]
    again.append(_event(40))
    assert again.replay(40_000)[0].attributes == {"name": "c40"}
    again.close()


def test_full_disk_loses_only_the_journal_entries(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(tmp_path)],
                   check=True)
    try:
        journal = Journal(str(tmp_path / "events.log"), limit=1000)
        for n in range(1, 101):  # two pages hold about 60: the rest find the disk full
            journal.append(_event(n))
        subprocess.run(["mount", "-o", "remount,size=64k", str(tmp_path)], check=True)
        journal.append(_event(200))
        kept = [e.time_ns // 1000 for e in journal.replay(0)]
        journal.close()
    finally:
        subprocess.run(["umount", str(tmp_path)], check=True)
    # Whole lines up to the full disk, the line cut by it skipped, then the next one.
    assert 50 < len(kept) < 100 and kept == [*range(1, len(kept)), 200], kept
    assert [r.message.split(": ", 1)[1] for r in caplog.records] == [
        "[Errno 28] No space left on device; events are not kept until it can be "
        "written again", "written again"]


def test_bus_feeds_the_journal(tmp_path: Path) -> None:
    bus = EventBus()
    journal = Journal(str(tmp_path / "events.log"))
    bus.subscribe(journal.append)
    bus.publish("image", "tag", "sha256:x", {"name": "busybox:latest"})
    assert [(e.type, e.action) for e in journal.replay(1)] == [("image", "tag")]
    journal.close()


def test_filters_as_dockerd() -> None:
    die = _event(1, "die", exitCode="0", image="busybox:latest", a="b")
    exec_create = _event(1, "exec_create: sh -c true", image="busybox")
    assert filters.matches({"event": ["die"]}, die)
    assert filters.matches({"event": ["exec_create"]}, exec_create)
    assert filters.matches({"container": ["c1"]}, die)
    assert filters.matches({"container": [f"{1:064x}"[:12]]}, die)
    assert not filters.matches({"container": ["c2"]}, die)
    assert filters.matches({"image": ["busybox"]}, die)
    assert filters.matches({"label": ["a=b"]}, die) and filters.matches({"label": ["a"]}, die)
    assert not filters.matches({"label": ["a=c"]}, die)
    assert not filters.matches({"type": ["image"]}, die)
    assert not filters.matches({"volume": ["v"]}, die)
    with pytest.raises(InvalidParameter, match="invalid filter 'bogus'"):
        filters.validate({"bogus": ["x"]})
