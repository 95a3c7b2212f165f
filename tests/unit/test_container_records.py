"""Container records: integer-ns times, their persistence, the migration of the rows
that held the API's inspect documents."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from moorage.daemon.containers.store import ContainerStore
from moorage.model.config import ContainerConfig, HostConfig, LogConfig, MountPoint
from moorage.model.plain import from_plain, to_plain
from moorage.model.records import SCHEMA_VERSION, ContainerRecord, ContainerState
from moorage.model.times import ZERO_TIME, format_rfc3339_nano, parse_rfc3339_ns
from moorage.store.metadata import Metadata

_OLD_DOC = {
    "Id": "a" * 64, "Created": "2024-05-01T10:00:00.1Z", "Path": "sleep", "Args": ["9"],
    "State": {"Status": "exited", "Running": False, "Paused": False, "Restarting": False,
              "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 137, "Error": "",
              "StartedAt": "2024-05-01T10:00:00.15Z", "FinishedAt": "2024-05-01T10:00:01Z"},
    "Image": "sha256:" + "b" * 64, "ResolvConfPath": "/r", "HostnamePath": "/h",
    "HostsPath": "/hs", "LogPath": "/l", "Name": "/old", "RestartCount": 0,
    "Driver": "overlay2", "Platform": "linux", "ExecIDs": None,
    "HostConfig": {"Binds": ["/a:/b"], "LogConfig": {"Type": "json-file", "Config": {}},
                   "ShmSize": 67108864, "CapAdd": ["NET_ADMIN"]},
    "Mounts": [{"Type": "bind", "Source": "/a", "Destination": "/b", "Mode": "", "RW": True,
                "Propagation": "rprivate"}],
    "Config": {"Image": "busybox", "Cmd": ["sleep", "9"], "Labels": {"k": "v"},
               "Env": ["A=1"]},
}


def test_times_sort_as_numbers() -> None:
    tenth, fifteenth = (parse_rfc3339_ns("2024-05-01T10:00:00.1Z"),
                        parse_rfc3339_ns("2024-05-01T10:00:00.15Z"))
    assert tenth < fifteenth and fifteenth - tenth == 50_000_000
    assert format_rfc3339_nano(tenth) == "2024-05-01T10:00:00.1Z"
    assert format_rfc3339_nano(0) == ZERO_TIME and parse_rfc3339_ns(ZERO_TIME) == 0
    assert parse_rfc3339_ns("2024-05-01T12:00:00.000000001+02:00") == \
        parse_rfc3339_ns("2024-05-01T10:00:00Z") + 1


def test_record_round_trip() -> None:
    record = ContainerRecord(
        id="c" * 64, name="/n", created=1, path="sh", args=("-c", "true"), image="i",
        config=ContainerConfig(image="busybox", cmd=("sh",), labels={"a": "b"}),
        host_config=HostConfig(log_config=LogConfig(type="json-file")),
        mounts=(MountPoint("volume", "/v", "/d", "z", True, "", name="v", driver="local"),),
        state=ContainerState(status="running", running=True, pid=5, started_at=2))
    plain = json.loads(json.dumps(to_plain(record)))
    assert from_plain(ContainerRecord, plain) == record


def test_old_rows_are_migrated_on_open(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "moor.db")
    db.execute("CREATE TABLE containers (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
               "doc TEXT NOT NULL)")
    db.execute("INSERT INTO containers VALUES (?, ?, ?)",
               (_OLD_DOC["Id"], "/old", json.dumps(_OLD_DOC)))
    db.execute("INSERT INTO containers VALUES ('bad', '/bad', '{\"Id\": \"bad\"}')")
    db.commit()
    db.close()
    store = ContainerStore(Metadata(str(tmp_path / "moor.db")))
    [record] = store.load_all()
    assert record.name == "/old" and record.args == ("9",)
    assert record.created == parse_rfc3339_ns("2024-05-01T10:00:00.1Z")
    assert record.state.exit_code == 137 and record.state.status == "exited"
    assert record.state.started_at == parse_rfc3339_ns("2024-05-01T10:00:00.15Z")
    assert record.config.cmd == ("sleep", "9") and record.config.labels == {"k": "v"}
    assert record.host_config.binds == ("/a:/b",) and record.host_config.cap_add == ("NET_ADMIN",)
    assert record.mounts[0].destination == "/b"
    assert record.host_config.cgroupns_mode in ("host", "private")
    assert store.load_all() == [record]  # written back as a record: it reads the same
    versions = sqlite3.connect(tmp_path / "moor.db").execute(
        "SELECT id, version FROM containers").fetchall()
    assert versions == [(record.id, SCHEMA_VERSION), ("bad", 0)]


def test_unreadable_record_is_left_out(tmp_path: Path) -> None:
    metadata = Metadata(str(tmp_path / "moor.db"))
    table = metadata.records("containers")
    table.put("x", "/x", 1, '{"id": 3}')
    table.put("y", "/y", 99, "{}")
    assert ContainerStore(metadata).load_all() == []
