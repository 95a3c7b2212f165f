"""Engine operations (issue 12, inspection and data): events, stats, top, cp, export,
update, rename, container prune and system df, the same docker CLI steps on moord and
on a real dockerd, outputs compared with IDs and times masked; `moor` against moord.

Where moord deliberately differs it is said next to the step: an unknown event filter
is a 400 (dockerd 20.10 ignores it), and a tar entry naming a path outside the
destination is refused (dockerd 20.10 cleans the name and writes it inside).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from comparekit import Pair, daemon_pair, mask
from enginekit import Daemon, start_daemon, stop_daemon
from peers import Dockerd, dockerd_available

pytestmark = pytest.mark.skipif(not dockerd_available(), reason="needs dockerd")
IMAGE = "busybox:latest"
MOOR = os.path.join(os.path.dirname(sys.executable), "moor")


@pytest.fixture(scope="module")
def pair(busybox_tar: bytes) -> Iterator[Pair]:
    with daemon_pair("moor-ops-", IMAGE, busybox_tar) as pair:
        yield pair


@pytest.fixture
def name(pair: Pair) -> Iterator[str]:
    made = f"op-{uuid.uuid4().hex[:8]}"
    yield made
    pair.both("rm", "-f", made, f"{made}-renamed")


def moor(pair: Pair, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "MOOR_HOST")}
    return subprocess.run([MOOR, *args], env={**env, "DOCKER_HOST": pair.moord.host},
                          input=input, capture_output=True, timeout=60)


def request(socket_path: str, method: str, path: str, body: bytes | None = None
         ) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("localhost", timeout=30)
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(socket_path)
    conn.sock = sock
    conn.request(method, path, body=body, headers={"Content-Type": "application/x-tar"})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def _tar_names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getnames()


def both_ok(pair: Pair, *args: str) -> None:
    for result in pair.both(*args):
        assert result.returncode == 0, (args, result.stderr)


def test_events_since_until_filter(pair: Pair, name: str) -> None:
    since = f"{time.time() - 1:.9f}"
    both_ok(pair, "run", "-d", "--name", name, "--label", "op=ev", IMAGE, "sleep", "30")
    both_ok(pair, "exec", name, "true")
    both_ok(pair, "kill", name)
    both_ok(pair, "rename", name, f"{name}-renamed")
    both_ok(pair, "rm", f"{name}-renamed")
    until = f"{time.time() + 0.5:.9f}"
    fmt = "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.op}} " \
          "{{.Actor.Attributes.exitCode}} {{.Actor.Attributes.signal}} {{.Status}} {{.From}}"
    pair.same("events", "--since", since, "--until", until, "--filter", "label=op=ev",
              "--format", fmt)
    pair.same("events", "--since", since, "--until", until, "--filter", "event=die",
              "--filter", f"container={name}", "--format", fmt)
    pair.same("events", "--since", since, "--until", until, "--filter", "type=container",
              "--filter", "event=exec_die", "--format", "{{.Action}} {{.Actor.Attributes}}")
    ours = moor(pair, "events", "--since", "1m", "--until", until, "--filter", "label=op=ev",
                "--format", "{{.Action}}")
    assert ours.stdout.decode().split() == ["create", "start", "exec_create:", "true",
                                            "exec_start:", "true", "exec_die", "kill", "die",
                                            "rename", "destroy"], ours


def test_events_replay_and_until_stream(pair: Pair, name: str) -> None:
    since = f"{time.time() - 1:.9f}"
    both_ok(pair, "create", "--name", name, IMAGE, "true")
    status, _, body = request(pair.moord.socket, "GET",
                           f"/events?since={since}&until={time.time() + 1.5:.3f}")
    started = time.monotonic()
    assert status == 200 and b'"Action": "create"' in body.replace(b'":"', b'": "')
    assert time.monotonic() - started < 5
    # A future until ends a live stream then, with what happened meanwhile.
    results = []
    until = f"{time.time() + 2:.9f}"
    stream = subprocess.Popen(["docker", "events", "--until", until, "--filter",
                               f"container={name}", "--format", "{{.Action}}"],
                              env={**os.environ, "DOCKER_HOST": pair.moord.host},
                              stdout=subprocess.PIPE)
    time.sleep(0.5)
    pair.moord.docker("start", name)
    out, _ = stream.communicate(timeout=10)
    results = out.decode().split()
    assert results[0] == "create" and "start" in results and "die" in results


def test_unknown_event_filter_is_refused(pair: Pair) -> None:
    # dockerd 20.10 ignores unknown keys; later dockerd and moord refuse them.
    status, _, body = request(pair.moord.socket, "GET",
                           "/events?until=1&filters=" + '{"bogus":["x"]}'.replace('"', "%22"))
    assert (status, json.loads(body)) == (400, {"message": "invalid filter 'bogus'"})
    result = pair.moord.docker("events", "--until", "1", "--filter", "bogus=x")
    assert result.returncode == 1 and b"invalid filter 'bogus'" in result.stderr


def test_stats_top(pair: Pair, name: str) -> None:
    both_ok(pair, "run", "-d", "--name", name, IMAGE, "sleep", "60")
    pair.same("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", name)
    ours = moor(pair, "stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", name)
    assert ours.stdout == f"{name} 1\n".encode()
    status, _, body = request(pair.moord.socket, "GET", f"/containers/{name}/stats?stream=0")
    doc = json.loads(body)
    assert status == 200 and doc["pids_stats"]["current"] == 1
    assert doc["memory_stats"]["usage"] > 0 and doc["memory_stats"]["stats"]
    assert doc["cpu_stats"]["system_cpu_usage"] > doc["precpu_stats"]["system_cpu_usage"]
    tops = [r.stdout.splitlines() for r in pair.both("top", name)]
    assert [line.split()[-2:] for line in tops[0][1:]] == [[b"sleep", b"60"]]
    assert tops[0][0].split() == tops[1][0].split()
    pair.same("top", name, "-o", "pid,comm", compare_stdout=False)
    pair.same("top", name, "bogus")
    both_ok(pair, "stop", "-t", "0", name)
    pair.same("top", name)


def test_cp_both_ways(pair: Pair, name: str, tmp_path: Path) -> None:
    both_ok(pair, "run", "-d", "--name", name, IMAGE, "sh", "-c",
            "mkdir -p /d/sub; echo hi > /d/f; echo deep > /d/sub/g; ln -s f /d/link; "
            "sleep 60")
    both_ok(pair, "exec", name, "true")
    trees = []
    for engine, daemon in (("m", pair.moord), ("d", pair.dockerd)):
        out = tmp_path / engine
        out.mkdir()
        for args in (("cp", f"{name}:/d", str(out)), ("cp", f"{name}:/d/.", f"{out}/dot"),
                     ("cp", f"{name}:/d/link", f"{out}/l")):
            result = daemon.docker(*args)
            assert result.returncode == 0, (engine, args, result.stderr)
        trees.append(sorted((str(p.relative_to(out)), p.is_symlink(),
                             p.read_bytes() if p.is_file() and not p.is_symlink() else None)
                            for p in out.rglob("*")))
    assert trees[0] == trees[1]
    source = tmp_path / "in"
    (source / "deep").mkdir(parents=True)
    (source / "deep" / "file").write_text("in\n")
    os.symlink("deep/file", source / "ln")
    both_ok(pair, "cp", str(source), f"{name}:/tmp/")
    pair.same("exec", name, "sh", "-c", "cat /tmp/in/deep/file; readlink /tmp/in/ln")
    # stdin and stdout tar streams
    tarred = [r.stdout for r in pair.both("cp", f"{name}:/d", "-")]
    names = [sorted(_tar_names(t)) for t in tarred]
    assert names[0] == names[1] == ["d", "d/f", "d/link", "d/sub", "d/sub/g"]
    both_ok(pair, "exec", name, "mkdir", "/fromtar")
    for daemon, data in ((pair.moord, tarred[1]), (pair.dockerd, tarred[1])):
        assert daemon.docker("cp", "-", f"{name}:/fromtar", input=data).returncode == 0
    pair.same("exec", name, "cat", "/fromtar/d/sub/g")
    pair.same("cp", f"{name}:/nosuch", str(tmp_path))
    # Refused by the CLI itself (moby's PrepareArchiveCopy), whose tar writer may also log
    # (logrus: `time=... level=error`) that it found the pipe closed, before or after the
    # answer, or not at all: a race of its own.
    refused = pair.both("cp", str(tmp_path / "in" / "deep" / "file"), f"{name}:/nosuch/")
    assert [(r.returncode, [line for line in r.stderr.splitlines()
                            if not line.startswith(b'time="')]) for r in refused] == \
        [(1, [b"no such directory"])] * 2
    # into a stopped container, and out of it
    both_ok(pair, "stop", "-t", "0", name)
    both_ok(pair, "cp", str(source / "deep" / "file"), f"{name}:/stopped-file")
    both_ok(pair, "start", name)
    pair.same("exec", name, "cat", "/stopped-file")
    assert moor(pair, "cp", f"{name}:/stopped-file", str(tmp_path / "back")).returncode == 0
    assert (tmp_path / "back").read_text() == "in\n"


def test_cp_out_sends_large_files_whole(pair: Pair, name: str, tmp_path: Path) -> None:
    """moord sends files with sendfile(2) straight to the client's socket: files larger
    than the socket's buffers arrive whole and in order, on both daemons alike."""
    both_ok(pair, "run", "-d", "--name", name, IMAGE, "sh", "-c",
            "mkdir /big; dd if=/dev/urandom of=/big/a bs=1M count=9 2>/dev/null; "
            "echo small > /big/b; dd if=/dev/urandom of=/big/c bs=777 count=4099 "
            "2>/dev/null; touch /big/ready; sleep 60")
    pair.same("exec", name, "sh", "-c", "while [ ! -e /big/ready ]; do sleep 0.1; done")
    sums = [r.stdout.decode().split() for r in pair.both("exec", name, "sha256sum",
                                                         "/big/a", "/big/b", "/big/c")]
    for engine, daemon, inside in (("m", pair.moord, sums[0]), ("d", pair.dockerd, sums[1])):
        assert daemon.docker("cp", f"{name}:/big", str(tmp_path / engine)).returncode == 0
        got = [hashlib.sha256((tmp_path / engine / f).read_bytes()).hexdigest()
               for f in ("a", "b", "c")]
        assert got == inside[::2], engine
    # A client that leaves mid-file: the daemon carries on, and the next copy is whole.
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(pair.moord.socket)
        client.sendall(f"GET /containers/{name}/archive?path=/big HTTP/1.1\r\n"
                       "Host: moord\r\n\r\n".encode())
        client.recv(1 << 16)
    again = tmp_path / "again"
    assert pair.moord.docker("cp", f"{name}:/big/a", str(again)).returncode == 0
    assert hashlib.sha256(again.read_bytes()).hexdigest() == sums[0][0]


def test_cp_of_a_running_containers_root(pair: Pair, name: str, tmp_path: Path) -> None:
    """The whole root of a running container: its files and volumes, and what the
    runtime mounted (proc, sys, dev…) as the empty directories the image has, as
    dockerd's archive is made; never a /proc file, which no tar could hold."""
    both_ok(pair, "run", "-d", "--name", name, "-v", "/data", IMAGE, "sh", "-c",
            "echo v > /data/in-volume; echo r > /in-root; sleep 60")
    pair.same("exec", name, "sh", "-c", "while [ ! -e /in-root ]; do sleep 0.1; done")
    listings = []
    for daemon in (pair.moord, pair.dockerd):
        got = daemon.docker("cp", f"{name}:/", "-", timeout=60)
        assert got.returncode == 0, got.stderr
        with tarfile.open(fileobj=io.BytesIO(got.stdout)) as tar:
            listings.append([m.name for m in tar.getmembers()])
    for names in listings:  # named as dockerd names them: "/" (read as ""), "/bin"…
        assert names[0] == "" and all(name.startswith("/") for name in names[1:])
    ours, theirs = ({name.lstrip("/") for name in names} for names in listings)
    for path in ("in-root", "data/in-volume", "proc", "sys"):
        assert path in ours and path in theirs, path
    assert not [p for p in ours if p.startswith(("proc/", "sys/"))]
    # dockerd's init layer adds /dev/console and mount points under /dev; neither
    # daemon sends /dev's device nodes
    assert not {p for p in ours if p.startswith("dev/")} - {p for p in theirs}


def test_cp_into_volume_of_stopped_container(pair: Pair, name: str, tmp_path: Path) -> None:
    local = tmp_path / "v.txt"
    local.write_text("vol\n")
    both_ok(pair, "create", "--name", name, "-v", "/data", IMAGE, "cat", "/data/v.txt")
    both_ok(pair, "cp", str(local), f"{name}:/data/")
    for daemon in (pair.moord, pair.dockerd):
        assert daemon.docker("start", "-a", name).stdout == b"vol\n"


def test_cp_never_escapes_through_symlinks(pair: Pair, name: str, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    pair.moord.docker("run", "-d", "--name", name, IMAGE, "sh", "-c",
                      f"mkdir -p {outside}; ln -s {outside} /escape; ln -s / /rootlink; "
                      f"ln -s ../../../../../../{outside} /rel; sleep 60", check=True)
    pair.moord.docker("exec", name, "true", check=True)
    local = tmp_path / "payload"
    local.write_text("payload\n")
    for target in ("/escape/", "/rel/", "/rootlink" + str(outside) + "/"):
        result = pair.moord.docker("cp", str(local), f"{name}:{target}")
        assert list(outside.iterdir()) == [], (target, result)
    # A container swapping a symlink while files are copied through it: never outside.
    pair.moord.docker("exec", "-d", name, "sh", "-c",
                      f"while true; do ln -sfn {outside} /race; ln -sfn /tmp /race; done",
                      check=True)
    for _ in range(20):
        pair.moord.docker("cp", str(local), f"{name}:/race/")
        pair.moord.docker("cp", f"{name}:/race/", str(tmp_path / "got"))
    assert list(outside.iterdir()) == []
    # The same path inside the container got the file.
    assert moor(pair, "exec", name, "ls", str(outside)).stdout == b"payload\n"
    # A tar naming ".." or an absolute path is refused; nothing lands outside.
    for bad in ("../../../../../../" + str(outside) + "/evil", str(outside) + "/abs"):
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            info = tarfile.TarInfo(bad)
            info.size = 4
            tar.addfile(info, io.BytesIO(b"bad\n"))
        status, _, body = request(pair.moord.socket, "PUT",
                               f"/containers/{name}/archive?path=/tmp", data.getvalue())
        assert status == 400 and b"refusing archive entry" in body, body
    assert list(outside.iterdir()) == []
    # The path-stat header of a symlink names its target inside the container.
    status, headers, _ = request(pair.moord.socket, "HEAD",
                              f"/containers/{name}/archive?path=/escape")
    stat = json.loads(base64.b64decode(headers["x-docker-container-path-stat"]))
    assert status == 200 and stat["linkTarget"] == str(outside)
    assert stat["mode"] & (1 << 27)


def test_export_import_update_rename_prune_df(pair: Pair, name: str) -> None:
    both_ok(pair, "run", "-d", "--name", name, IMAGE, "sh", "-c", "echo x > /made; sleep 60")
    both_ok(pair, "exec", name, "true")

    def export_import(daemon: Daemon | Dockerd) -> None:
        exported = daemon.docker("export", name)
        assert exported.returncode == 0
        assert "made" in _tar_names(exported.stdout)
        assert daemon.docker("import", "-", f"{name}:exported",
                             input=exported.stdout).returncode == 0

    pair.each(export_import)
    pair.same("run", "--rm", f"{name}:exported", "cat", "/made")
    pair.same("update", "--memory", "64m", name)  # needs --memory-swap too (dockerd's rule)
    pair.same("update", "--memory", "64m", "--memory-swap", "128m", "--pids-limit", "40", name)
    pair.same("inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} "
              "{{.HostConfig.PidsLimit}}", name)
    _, _, body = request(pair.moord.socket, "GET", f"/containers/{name}/stats?stream=0")
    assert json.loads(body)["memory_stats"]["limit"] == 64 * 1024 * 1024
    pair.same("rename", name, f"{name}-renamed")
    pair.same("rename", name, "x")
    pair.same("ps", "-a", "--filter", f"name={name}", "--format", "{{.Names}}")
    both_ok(pair, "rm", "-f", f"{name}-renamed")
    pair.same("update", "--memory", "64m", name)  # removed: 404
    both_ok(pair, "rmi", f"{name}:exported")
    both_ok(pair, "create", "--name", name, "--label", "prune=no", IMAGE, "true")
    pair.same("container", "prune", "-f", "--filter", "label=prune=yes")
    pair.same("container", "prune", "-f", "--filter", "bogus=1")
    pair.same("ps", "-a", "--format", "{{.Names}}", "--filter", f"name={name}")
    dfs = [mask(r.stdout) for r in pair.both("system", "df", "-v", "--format",
                                             "{{json .}}")]
    docs = [json.loads(d) for d in dfs]
    assert [len(d["Images"]) for d in docs] == [1, 1]
    assert [[c["Names"] for c in d["Containers"]] for d in docs] == [[name], [name]]
    pair.same("system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}")
    for args in (("system", "df"), ("system", "df", "-v"),
                 ("system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Size}}")):
        ours, theirs = moor(pair, *args), pair.moord.docker(*args)
        # words, not columns: an age that moved between the two calls ("59 seconds ago",
        # "About a minute ago") widens its column in one table only
        assert (ours.returncode, [line.split() for line in mask(ours.stdout).splitlines()]) \
            == (0, [line.split() for line in mask(theirs.stdout).splitlines()]), args
    pair.same("container", "prune", "-f", "--filter", "label=prune=no")


def test_events_journal_survives_a_restart(busybox_tar: bytes, tmp_path: Path) -> None:
    since = f"{time.time() - 1:.9f}"
    daemon = start_daemon(str(tmp_path))
    try:
        daemon.docker("import", "-", "journal:1", input=busybox_tar, check=True)
        daemon.docker("create", "--name", "kept", "journal:1", "true", check=True)
        daemon.docker("rm", "kept", check=True)
    finally:
        stop_daemon(daemon)
    daemon = start_daemon(str(tmp_path))
    try:
        found = daemon.docker("events", "--since", since, "--until", f"{time.time():.9f}",
                              "--format", "{{.Type}} {{.Action}}", check=True)
        assert found.stdout.decode().splitlines() == [
            "image tag", "image import", "container create", "container destroy"], found
        daemon.docker("rmi", "journal:1", check=True)
    finally:
        stop_daemon(daemon)
