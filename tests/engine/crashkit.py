"""A crash campaign: moord killed with SIGKILL at random moments while images are
loaded and removed, containers run, stop and go, a log-heavy container writes and a
restart policy restarts a container with a healthcheck; after each restart the store
check is clean, every container is in a state its story allows with its logs and exit
code, and at the end nothing (mount, cgroup, process) is left. Used by the bounded
test and by scripts/crash_campaign.py for longer runs."""

from __future__ import annotations

import http.client
import io
import json
import os
import random
import signal
import socket
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from enginekit import (
    Daemon,
    Footprint,
    reap,
    residue,
    saved_image,
    start_daemon,
    stop_daemon,
)

IMAGE = "busybox:latest"
BULKY = "bulky:latest"
LOG_LINES = 20000


@dataclass
class Outcome:
    kills: int = 0
    faults: list[str] = field(default_factory=list)   # what a check found wrong
    survived: dict[str, int] = field(default_factory=dict)  # moments killed in, by work


def _store_check(daemon: Daemon) -> dict:
    conn = http.client.HTTPConnection("localhost", timeout=60)
    conn.sock = socket.socket(socket.AF_UNIX)
    conn.sock.connect(daemon.socket)
    conn.request("GET", "/moor/system/check")
    return json.loads(conn.getresponse().read())


def bulky_archive(rng: random.Random, size: int) -> bytes:
    """A `docker save` archive of a one-layer image of `size` random bytes."""
    layer_buffer = io.BytesIO()
    with tarfile.open(fileobj=layer_buffer, mode="w") as tar:
        data = rng.randbytes(size)
        info = tarfile.TarInfo("payload")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return saved_image(BULKY, layer_buffer.getvalue(), {"Cmd": ["true"]})


class _Workers:
    """Loops of work against whichever moord is up; paused around each restart."""

    def __init__(self, base: str, archive: bytes) -> None:
        self.base = base
        self.archive = archive
        self.daemon: Daemon | None = None
        self.running = threading.Event()
        self.done = threading.Event()
        self.idle = [threading.Event(), threading.Event()]
        self.doing = ["", ""]
        self.threads = [threading.Thread(target=self._loop, args=(i, work), daemon=True)
                        for i, work in enumerate((self._images, self._containers))]
        self.serial = 0

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def pause(self) -> None:
        self.running.clear()
        for idle in self.idle:
            idle.wait(120)

    def moments(self) -> list[str]:
        """What each loop is doing now."""
        return [d for d in self.doing if d]

    def resume(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.doing = ["", ""]
        self.running.set()

    def stop(self) -> None:
        self.done.set()
        self.running.set()
        for thread in self.threads:
            thread.join(120)

    def _loop(self, index: int, work: Callable[[int], None]) -> None:
        while not self.done.is_set():
            if not self.running.is_set():
                self.idle[index].set()
                self.running.wait()
                self.idle[index].clear()
                continue
            work(index)

    def _run(self, index: int, what: str, *args: str, data: bytes | None = None) -> str:
        self.doing[index] = what
        daemon = self.daemon
        assert daemon is not None
        return daemon.docker(*args, input=data, timeout=60).stdout.decode().strip()

    def _images(self, index: int) -> None:
        self._run(index, "image load", "load", data=self.archive)
        self._run(index, "image rmi", "rmi", BULKY)

    def _containers(self, index: int) -> None:
        self.serial += 1
        name = f"churn-{self.serial}"
        self._run(index, "container run", "run", "-d", "--name", name, IMAGE,
                  "sh", "-c", "echo hello; sleep 30")
        self._run(index, "container stop", "stop", "-t", "0", name)
        self._run(index, "container start", "start", name)
        self._run(index, "container rm", "rm", "-f", name)
        self._run(index, "container run --rm", "run", "--rm", IMAGE, "echo", "brief")


def _inspect(daemon: Daemon, name: str) -> dict | None:
    shown = daemon.docker("inspect", name)
    return json.loads(shown.stdout)[0] if shown.returncode == 0 else None


def _check(daemon: Daemon, outcome: Outcome, ids: set[str]) -> None:
    report = _store_check(daemon)
    if report.get("Problems") or report.get("Orphans"):
        outcome.faults.append(f"store check after kill {outcome.kills}: {report}")
    listed = daemon.docker("ps", "-aq", "--no-trunc").stdout.decode().split()
    ids.update(listed)
    for container_id in listed:
        doc = _inspect(daemon, container_id)
        if doc is None:
            continue  # removed meanwhile (an --rm container's exit)
        state = doc["State"]
        if state["Status"] not in ("created", "running", "exited", "restarting"):
            outcome.faults.append(f"{doc['Name']}: state {state['Status']}")
        if state["Running"] and not state["Restarting"] and not os.path.exists(
                f"/proc/{state['Pid']}"):
            # It may have just exited (the restart policy's container does, often):
            # a fault only if its exit is never recorded.
            time.sleep(0.5)
            again = _inspect(daemon, container_id)
            if again is not None and again["State"]["StartedAt"] == state["StartedAt"] \
                    and again["State"]["Running"] and not again["State"]["Restarting"]:
                outcome.faults.append(f"{doc['Name']}: running without its process")
    done = _inspect(daemon, "done")
    logs = daemon.docker("logs", "done")
    if done is None or done["State"]["ExitCode"] != 7 or logs.stdout != b"finished\n":
        outcome.faults.append(f"done: {done and done['State']} logs {logs.stdout!r}")
    always = _inspect(daemon, "always")
    if always is None or not (always["State"]["Running"] or always["State"]["Restarting"]):
        outcome.faults.append(f"always: not kept running: {always and always['State']}")
    health = (always or {}).get("State", {}).get("Health") or {}
    if health.get("Status") not in ("starting", "healthy", "unhealthy") \
            or len(health.get("Log") or ()) > 5:
        outcome.faults.append(f"always: its health is not whole: {health}")
    lines = daemon.docker("logs", "logger").stdout.decode().splitlines()
    if lines != [f"line-{i}" for i in range(len(lines))]:
        outcome.faults.append(f"logger: its log is not whole ({len(lines)} lines)")


def campaign(base: str, busybox_tar: bytes, kills: int, seed: int,
             say: Callable[[str], None] = lambda _: None) -> Outcome:
    rng = random.Random(seed)
    outcome = Outcome()
    ids: set[str] = set()
    daemon = start_daemon(base)
    workers = _Workers(base, bulky_archive(rng, 4 << 20))
    try:
        daemon.docker("import", "-", IMAGE, input=busybox_tar, check=True)
        daemon.docker("run", "--name", "done", IMAGE, "sh", "-c", "echo finished; exit 7")
        daemon.docker("run", "-d", "--name", "always", "--restart", "always",
                      "--health-cmd", "true", "--health-interval", "100ms", IMAGE,
                      "sh", "-c", "sleep 0.3; exit 3", check=True)
        daemon.docker("run", "-d", "--name", "logger", IMAGE, "sh", "-c",
                      f"i=0; while [ $i -lt {LOG_LINES} ]; do echo line-$i; i=$((i+1)); "
                      "done; sleep 999", check=True)
        workers.resume(daemon)
        workers.start()
        while outcome.kills < kills:
            time.sleep(rng.uniform(0.3, 1.5))
            moments = workers.moments()
            daemon.process.send_signal(signal.SIGKILL)
            daemon.process.wait()
            outcome.kills += 1
            for what in moments:
                outcome.survived[what] = outcome.survived.get(what, 0) + 1
            workers.pause()
            os.unlink(daemon.socket)  # start_daemon waits for a new one
            daemon = start_daemon(base)
            _check(daemon, outcome, ids)
            say(f"kill {outcome.kills}: {len(outcome.faults)} faults so far")
            workers.resume(daemon)
        workers.pause()
        ids.update(daemon.docker("ps", "-aq", "--no-trunc").stdout.decode().split())
        names = daemon.docker("ps", "-aq").stdout.decode().split()
        if names:
            daemon.docker("rm", "-f", *names)
        daemon.docker("rmi", "-f", BULKY)
        report = _store_check(daemon)
        if report.get("Problems") or report.get("Orphans"):
            outcome.faults.append(f"store check at the end: {report}")
        stop_daemon(daemon)
        left = residue(base, ids, Footprint.nothing())
        outcome.faults += [f"left behind: {item}" for item in left]
    finally:
        workers.stop()
        if daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait()
        reap(base, ids, Footprint.nothing())
    return outcome
