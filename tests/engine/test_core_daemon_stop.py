"""Stopping the daemon (issue 9). Without live-restore (Docker's default) SIGTERM stops the
daemon's containers and the daemon exits promptly, even with an attached client that sends
nothing; after a restart `ps -a` shows them exited. With `"live-restore": true` in
daemon.json the containers keep running and are adopted again, same pid.

The default case runs on moord and on the reference dockerd, which shows it is Docker's.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from enginekit import (
    Daemon,
    Footprint,
    container_cgroups,
    mounts_under,
    poll,
    reap,
    residue,
    start_daemon,
    stop_daemon,
    tied_processes,
)
from peers import DOCKER_CLI, Dockerd, dockerd_available, start_dockerd, stop_dockerd
from runtimekit import proc_starttime

IMAGE = "busybox:latest"
# A hang check, not a timing: the containers ignore SIGTERM (pid 1) and are killed after
# their one-second stop timeout; dockerd exits ~2 s after SIGTERM here.
SIGTERM_BOUND = 15


def _start(kind: str, base: Path, *extra: str) -> Daemon | Dockerd:
    return start_daemon(str(base), *extra) if kind == "moord" else start_dockerd(str(base))


def _alive(pid: int, start: int | None) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z" and int(fields[19]) == start


def _pids(daemon: Daemon | Dockerd, names: list[str]) -> dict[str, tuple[int, int | None]]:
    found = {}
    for name in names:
        pid = int(daemon.docker("inspect", "-f", "{{.State.Pid}}", name, check=True).stdout)
        assert pid > 0, name
        found[name] = (pid, proc_starttime(pid))
    return found


def _stop(daemon: Daemon | Dockerd) -> None:
    if isinstance(daemon, Daemon):
        stop_daemon(daemon)
    else:
        stop_dockerd(daemon)


def _abandon(daemon: Daemon | Dockerd) -> None:
    """After a failure: the daemon goes at once; reap() then removes what it left."""
    if daemon.process.poll() is None:
        daemon.process.kill()
        daemon.process.wait()



@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """A base directory for the test's own daemons; whatever they leave there is reaped."""
    yield tmp_path
    reap(str(tmp_path), set(), Footprint.nothing())


@pytest.mark.parametrize("kind", ["moord", "dockerd"])
def test_sigterm_stops_containers_without_live_restore(kind: str, scratch: Path,
                                                       busybox_tar: bytes) -> None:
    if kind == "dockerd" and not dockerd_available():
        pytest.skip("needs dockerd")
    daemon = _start(kind, scratch)
    hung: subprocess.Popen | None = None
    ids: set[str] = set()
    try:
        daemon.docker("import", "-", IMAGE, input=busybox_tar, check=True)
        for name in ("one", "two"):
            ids.add(daemon.docker("run", "-d", "--stop-timeout", "1", "--name", name, IMAGE,
                                  "sleep", "999", check=True).stdout.decode().strip())
        # An attached client that never sends anything, as a forgotten `docker run -i`.
        env = {**os.environ, "DOCKER_HOST": daemon.host,
               "DOCKER_CONFIG": str(scratch / "docker-config")}
        hung = subprocess.Popen([DOCKER_CLI, "run", "-i", "--stop-timeout", "1", "--name", "hung",
                                 IMAGE, "cat"],
                                env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        assert poll(lambda: daemon.docker("inspect", "-f", "{{.State.Running}}",
                                           "hung").stdout == b"true\n", 20), "hung never ran"
        pids = _pids(daemon, ["one", "two", "hung"])
        ids.update(daemon.docker("ps", "-aq", "--no-trunc").stdout.decode().split())
        daemon.process.terminate()
        try:
            daemon.process.wait(timeout=SIGTERM_BOUND)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{kind} still running {SIGTERM_BOUND} s after SIGTERM")

        assert poll(lambda: not any(_alive(*p) for p in pids.values()), 5), \
            f"containers outlived {kind}: " + ", ".join(
                n for n, p in pids.items() if _alive(*p))
        data = os.path.realpath(daemon.data_root)
        assert mounts_under(data) - {data} == set()
        assert poll(lambda: not container_cgroups(ids), 5), container_cgroups(ids)
        assert tied_processes(str(scratch), ids) == {}

        daemon = _start(kind, scratch)
        shown = daemon.docker("ps", "-a", "--format", "{{.Names}} {{.State}}", check=True)
        assert sorted(shown.stdout.decode().splitlines()) == \
            ["hung exited", "one exited", "two exited"], shown.stdout
        assert daemon.docker("rm", "one", "two", "hung").returncode == 0
        _stop(daemon)
        left = residue(str(scratch), ids, Footprint.nothing())
        assert not left, f"{kind} left behind:\n  " + "\n  ".join(left)
    finally:
        if hung is not None:
            hung.kill()
            hung.wait()
        _abandon(daemon)
        reap(str(scratch), ids, Footprint.nothing())


@pytest.mark.parametrize("kind", ["moord", "dockerd"])
def test_sigterm_ends_event_streams(kind: str, scratch: Path) -> None:
    """An events stream still read and one whose client went away unseen (with no
    container, no event comes to fail a write) end with the daemon's stop, as dockerd's;
    moord's waited for aiohttp's 60 s shutdown timeout."""
    if kind == "dockerd" and not dockerd_available():
        pytest.skip("needs dockerd")
    daemon = _start(kind, scratch)
    events: subprocess.Popen | None = None
    try:
        env = {**os.environ, "DOCKER_HOST": daemon.host,
               "DOCKER_CONFIG": str(scratch / "docker-config")}
        events = subprocess.Popen([DOCKER_CLI, "events"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        with socket.socket(socket.AF_UNIX) as gone:
            gone.connect(daemon.socket)
            gone.sendall(b"GET /events HTTP/1.1\r\nHost: d\r\n\r\n")
            assert b" 200 " in gone.recv(4096)
        assert poll(lambda: int(daemon.docker("info", "-f", "{{.NEventsListener}}").stdout
                                or 0) >= 1, 10)  # `docker events` is listening
        daemon.process.terminate()
        try:
            daemon.process.wait(timeout=SIGTERM_BOUND)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{kind} still running {SIGTERM_BOUND} s after SIGTERM")
        assert events.wait(timeout=10) is not None
    finally:
        if events is not None and events.poll() is None:
            events.kill()
            events.wait()
        _abandon(daemon)


def test_live_restore_keeps_containers_running(scratch: Path, busybox_tar: bytes) -> None:
    config = scratch / "daemon.json"
    config.write_text(json.dumps({"live-restore": True}))
    (scratch / "d").mkdir()
    base = scratch / "d"
    daemon = start_daemon(str(base), "--config-file", str(config))
    ids: set[str] = set()
    try:
        info = daemon.docker("info", "-f", "{{.LiveRestoreEnabled}}", check=True)
        assert info.stdout == b"true\n"
        daemon.docker("import", "-", IMAGE, input=busybox_tar, check=True)
        ids.add(daemon.docker("run", "-d", "--name", "lives", IMAGE, "sleep", "999",
                              check=True).stdout.decode().strip())
        pid, start = _pids(daemon, ["lives"])["lives"]
        stop_daemon(daemon)
        assert _alive(pid, start), "the container died with the daemon despite live-restore"
        daemon = start_daemon(str(base), "--config-file", str(config))
        state = daemon.docker("inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "lives")
        assert state.stdout.decode().split() == ["running", str(pid)], state.stderr
        assert daemon.docker("stop", "-t", "1", "lives").returncode == 0
        assert not _alive(pid, start)
        assert daemon.docker("rm", "lives").returncode == 0
        stop_daemon(daemon)
        left = residue(str(base), ids, Footprint.nothing())
        assert not left, "moord left behind:\n  " + "\n  ".join(left)
    finally:
        _abandon(daemon)
        reap(str(base), ids, Footprint.nothing())
