"""Streams through the shim, driven by the real docker CLI and SDK, against moord and,
where it behaves the same, the reference dockerd: piped stdin, exec output from the
first moment, detach keys, and a shim that never blocks on one peer (a container
that does not read its stdin, an attach client that stops reading, a hung create).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from comparekit import Pair, concurrently, daemon_pair
from enginekit import Daemon, start_daemon, stop_daemon, unique_name
from peers import DOCKER_CLI, Dockerd, dockerd_available

from moorage.protocol import detachkeys

IMAGE = "busybox:latest"
MIB = 1 << 20


@pytest.fixture(scope="module")
def pair(busybox_tar: bytes) -> Iterator[Pair]:
    if not dockerd_available():
        pytest.skip("needs dockerd")
    with daemon_pair("moor-streams-", IMAGE, busybox_tar) as pair:
        yield pair




def _sdk(daemon: Daemon | object):  # type: ignore[no-untyped-def]
    import docker

    return docker.DockerClient(base_url=daemon.host)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- piped stdin

@pytest.mark.parametrize("size", [MIB, 50_000_000])
def test_piped_stdin_to_run_i(pair: Pair, size: int) -> None:
    """The CLI attaches before it starts the container: stdin sent before the start
    waits in the shim instead of stopping it (it hung past 64 KiB)."""

    def scenario(daemon: Daemon | Dockerd) -> None:
        result = daemon.docker("run", "-i", "--rm", IMAGE, "wc", "-c",
                               input=b"\0" * size, timeout=60)
        assert (result.returncode, result.stdout) == (0, f"{size}\n".encode()), result.stderr

    pair.each(scenario)


def test_tar_piped_into_run_i(pair: Pair, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(40):
        (tree / f"f{i}").write_bytes(os.urandom(64 * 1024))
    archive = subprocess.run(["tar", "-C", str(tree), "-c", "."], capture_output=True,
                             check=True).stdout
    script = "mkdir /x && tar x -C /x && ls /x | wc -l && cat /x/* | md5sum"
    expected = subprocess.run(f"ls {tree} | wc -l && cat {tree}/* | md5sum", shell=True,
                              capture_output=True, check=True).stdout

    def scenario(daemon: Daemon | Dockerd) -> None:
        result = daemon.docker("run", "-i", "--rm", IMAGE, "sh", "-c", script,
                               input=archive, timeout=60)
        assert (result.returncode, result.stdout) == (0, expected), result.stderr

    pair.each(scenario)


def test_tty_stdin_waits_for_a_full_terminal(pair: Pair, names: list[str]) -> None:
    """Stdin to a terminal that is not being read waits in the shim: none is dropped
    when the pty's input queue is full."""
    size = 300_000
    name = unique_name(names, "s")
    script = f"stty raw -echo; sleep 2; head -c {size} | wc -c"

    def scenario(daemon: Daemon | Dockerd) -> None:
        daemon.docker("create", "-it", "--name", name, IMAGE, "sh", "-c", script, check=True)
        client = _sdk(daemon)
        try:
            sock = client.api.attach_socket(name, params={
                "stdin": 1, "stdout": 1, "stream": 1})._sock
            client.api.start(name)
            time.sleep(0.5)  # stty has run; the terminal is raw and nobody reads it
            sock.settimeout(30)
            sock.sendall(b"y" * size)
            assert str(size).encode() in _read_until(sock, str(size).encode(), 30)
            sock.close()
        finally:
            client.close()

    pair.each(scenario)


# ---------------------------------------------------------------------- exec output

def test_exec_output_from_the_first_moment(pair: Pair, names: list[str]) -> None:
    """Output an exec writes at once reaches the SDK (it was lost when it followed the
    101 in the same read: dockerd sends the 101 before it starts the process)."""
    name = unique_name(names, "s")

    def scenario(daemon: Daemon | Dockerd) -> None:
        daemon.docker("run", "-d", "--name", name, IMAGE, "sleep", "300", check=True)

    pair.each(scenario)

    def exec_runs(daemon: Daemon | Dockerd) -> None:
        client = _sdk(daemon)
        try:
            container = client.containers.get(name)
            for _ in range(30 if daemon is pair.moord else 3):
                assert container.exec_run("echo hello") == (0, b"hello\n")
                code, (out, err) = container.exec_run(
                    ["sh", "-c", "echo out; sleep 0.05; echo err >&2"], demux=True)
                assert (code, out, err) == (0, b"out\n", b"err\n")
                code, output = container.exec_run("echo tty", tty=True)
                assert (code, output) == (0, b"tty\r\n")
        finally:
            client.close()

    pair.each(exec_runs)


# ---------------------------------------------------------------------- detach keys

def _type_detach_keys(sock: socket.socket, keys: bytes, host: str) -> None:
    """Echo through the tty first, then the keys one at a time, as a terminal sends
    them: the stream must end (detached), and the socket is closed."""
    sock.sendall(b"hello\n")
    assert b"hello" in _read_until(sock, b"hello", 10)
    for key in keys:
        sock.sendall(bytes((key,)))
        time.sleep(0.05)
    assert _read_to_eof(sock, 10), f"no detach on {host}"
    sock.close()


def _read_until(sock: socket.socket, wanted: bytes, seconds: float) -> bytes:
    data = b""
    deadline = time.monotonic() + seconds
    while wanted not in data and time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    return data


def _read_to_eof(sock: socket.socket, seconds: float) -> bool:
    """True when the daemon closed the stream within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not sock.recv(4096):
                return True
        except TimeoutError:
            return False
        except OSError:
            return True
    return False


@pytest.mark.parametrize(("query", "keys"), [
    ({}, b"\x10\x11"),                              # Docker's default, ctrl-p ctrl-q
    ({"detachKeys": "ctrl-a,x"}, b"\x01x"),
])
def test_detach_keys_end_the_attach(pair: Pair, names: list[str], query: dict,
                                    keys: bytes) -> None:
    name = unique_name(names, "s")

    def scenario(daemon: Daemon | Dockerd) -> None:
        daemon.docker("run", "-d", "-it", "--name", name, IMAGE, "cat", check=True)
        client = _sdk(daemon)
        try:
            raw = client.api.attach_socket(name, params={
                "stdin": 1, "stdout": 1, "stream": 1, **query})
            sock = raw._sock
            since = f"{time.time() - 1:.3f}"
            _type_detach_keys(sock, keys, daemon.host)
            assert client.containers.get(name).status == "running"
            events = daemon.docker("events", "--since", since, "--until",
                                   f"{time.time() + 0.5:.3f}", "--filter", f"container={name}",
                                   "--format", "{{.Action}}", check=True)
            assert events.stdout.split()[-1:] == [b"detach"], (daemon.host, events.stdout)
        finally:
            client.close()

    pair.each(scenario)


@pytest.mark.parametrize(("keys", "expected"), [
    ("", b"\x10\x11"), ("ctrl-p,ctrl-q", b"\x10\x11"), ("ctrl-a,x", b"\x01x"),
    ("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_", b"\x00\x1b\x1c\x1d\x1e\x1f"), ("a", b"a"),
])
def test_detach_key_syntax(keys: str, expected: bytes) -> None:
    assert detachkeys.parse(keys) == expected


@pytest.mark.parametrize("keys", ["ctrl-1", "ctrl-", "ctrl-A", "ab", "a,,b"])
def test_detach_key_syntax_refused(keys: str) -> None:
    with pytest.raises(detachkeys.InvalidDetachKeys, match="Unknown character"):
        detachkeys.parse(keys)


@pytest.mark.parametrize(("chunks", "forwarded", "detached"), [
    ([b"ab\x10\x11cd"], b"ab", True),                 # within one chunk
    ([b"ab\x10", b"\x11"], b"ab", True),               # split across chunks
    ([b"\x10", b"x\x10", b"\x11"], b"\x10x", True),    # a false start goes on
    ([b"\x10\x10\x11"], b"\x10", True),               # a repeated first key
    ([b"\x11\x10"], b"\x11", False),                  # held back: may be the keys
])
def test_detach_scanner(chunks: list[bytes], forwarded: bytes, detached: bool) -> None:
    scanner = detachkeys.DetachScanner(b"\x10\x11")
    out, done = b"", False
    for chunk in chunks:
        data, done = scanner.feed(chunk)
        out += data
        if done:
            break
    assert (out, done) == (forwarded, detached)


def test_detach_keys_end_an_exec(pair: Pair, names: list[str]) -> None:
    name = unique_name(names, "s")

    def scenario(daemon: Daemon | Dockerd) -> None:
        daemon.docker("run", "-d", "--name", name, IMAGE, "sleep", "300", check=True)
        client = _sdk(daemon)
        try:
            exec_id = client.api.exec_create(name, ["cat"], stdin=True, tty=True,
                                             detach_keys="ctrl-a,x")["Id"]
            sock = client.api.exec_start(exec_id, tty=True, socket=True)._sock
            _type_detach_keys(sock, b"\x01x", daemon.host)
            assert client.containers.get(name).status == "running"
        finally:
            client.close()

    pair.each(scenario)


def test_invalid_detach_keys(pair: Pair, names: list[str]) -> None:
    import docker

    name = unique_name(names, "s")
    seen = []
    for daemon in (pair.moord, pair.dockerd):
        daemon.docker("run", "-d", "-it", "--name", name, IMAGE, "cat", check=True)
        client = _sdk(daemon)
        try:
            with pytest.raises(docker.errors.APIError) as caught:
                client.api.attach_socket(name, params={"stdin": 1, "stream": 1,
                                                       "detachKeys": "ctrl-1"})
            seen.append((caught.value.status_code, caught.value.explanation))
        finally:
            client.close()
    assert seen[0] == seen[1]
    assert seen[0] == (400, "Invalid detach keys (ctrl-1) provided")


# ---------------------------------------------------------------------- never blocks

def _timed(daemon: Daemon, *args: str) -> float:
    started = time.monotonic()
    result = daemon.docker(*args, timeout=20)
    assert result.returncode == 0, result.stderr
    return time.monotonic() - started


def test_container_not_reading_stdin(pair: Pair, names: list[str]) -> None:
    """A client pours into the stdin of a container that never reads it: it is pushed
    back (not buffered without end), and kill and stop still answer at once."""
    moord = pair.moord
    for command in ("kill", "stop"):
        name = unique_name(names, "s")
        moord.docker("run", "-d", "-i", "--name", name, IMAGE, "sleep", "300", check=True)
        client = _sdk(moord)
        raw = client.api.attach_socket(name, params={"stdin": 1, "stream": 1})
        sock = raw._sock
        sent = [0]

        def pour(sock: socket.socket = sock, sent: list[int] = sent) -> None:
            chunk = b"x" * 65536
            sock.settimeout(15)
            try:
                while sent[0] < 64 * MIB:
                    sent[0] += sock.send(chunk)
            except OSError:
                pass

        pourer = threading.Thread(target=pour, daemon=True)
        pourer.start()
        try:
            time.sleep(1.5)
            assert sent[0] < 64 * MIB, "stdin was buffered without bound"
            args = ("kill", name) if command == "kill" else ("stop", "-t", "1", name)
            assert _timed(moord, *args) < 5
            assert _timed(moord, "wait", name) < 5
        finally:
            sock.close()
            pourer.join(20)
            client.close()


def test_attach_client_that_stops_reading(pair: Pair, names: list[str]) -> None:
    """An attach client that never reads is dropped: the container is not held (its log
    goes on growing) and stop and kill answer at once."""
    moord = pair.moord

    def stalled_client_then(command: str, name: str) -> None:
        moord.docker("run", "-d", "--name", name, IMAGE, "yes", "attached output",
                     check=True)
        log_path = moord.docker("inspect", "-f", "{{.LogPath}}", name).stdout.decode().strip()
        client = _sdk(moord)
        raw = client.api.attach_socket(name, params={"stdout": 1, "stream": 1})
        try:
            # The client's buffers fill, the container waits STALL_SECONDS for it, then it
            # is dropped and the log grows again: the longest pause, sampled for 8 s, stays
            # far below a hold (a loaded machine adds pauses of its own, never seconds).
            last_size, last_growth, longest = -1, time.monotonic(), 0.0
            deadline = last_growth + 8
            while (now := time.monotonic()) < deadline:
                size = os.path.getsize(log_path)
                if size > last_size:
                    last_size, last_growth = size, now
                longest = max(longest, now - last_growth)
                time.sleep(0.1)
            assert longest < 3, f"the container is held by the client ({longest:.1f} s)"
            args = ("kill", name) if command == "kill" else ("stop", "-t", "1", name)
            assert _timed(moord, *args) < 5
        finally:
            raw._sock.close()
            client.close()

    # The two containers at once: each waits out its own client's stall.
    concurrently(*(partial(stalled_client_then, command, unique_name(names, "s"))
                   for command in ("kill", "stop")))


def test_attached_client_keeps_every_byte(pair: Pair) -> None:
    """A client that keeps up loses nothing, however fast the container writes."""

    def scenario(daemon: Daemon | Dockerd) -> None:
        result = daemon.docker("run", "--rm", IMAGE, "head", "-c", str(30 * MIB), "/dev/zero",
                               timeout=60)
        assert (result.returncode, len(result.stdout)) == (0, 30 * MIB), result.stderr

    pair.each(scenario)


def test_hung_shim_is_not_a_hang(pair: Pair, names: list[str]) -> None:
    """kill of a container whose shim answers nothing: after the request's deadline the
    daemon kills the container's processes and the shim itself, as moby's
    killPossiblyDeadProcess kills the pid when containerd cannot."""
    moord = pair.moord
    name = unique_name(names, "s")
    moord.docker("run", "-d", "--name", name, IMAGE, "sleep", "300", check=True)
    pid = int(moord.docker("inspect", "-f", "{{.State.Pid}}", name).stdout)
    shim = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    os.kill(shim, 19)  # SIGSTOP: the shim answers nothing
    try:
        result = moord.docker("kill", name, timeout=30)
        assert result.returncode == 0, result.stderr
        state = moord.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name)
        assert state.stdout == b"exited 137\n"
        # The killed init is reaped by whoever inherits it from the shim: a moment later.
        deadline = time.monotonic() + 5
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{shim}").exists() and not Path(f"/proc/{pid}").exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(shim, 18)  # SIGCONT


# ---------------------------------------------------------------------- concurrent creates

_HANG_RUNTIME = """#!/bin/sh
# A runtime whose create hangs until the test releases it; anything else is runc.
case " $* " in
*" create "*)
    touch "{marks}/started"
    for _ in $(seq 300); do [ -e "{marks}/release" ] && break; sleep 0.1; done
    exit 1;;
esac
exec runc "$@"
"""


def test_hung_create_does_not_block_other_creates(busybox_tar: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="ms-") as base:  # short: sockets live in it
        _hung_create_beside_another(busybox_tar, Path(base))


def _hung_create_beside_another(tar: bytes, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    runtime = tmp_path / "hang-runtime"
    runtime.write_text(_HANG_RUNTIME.format(marks=marks))
    runtime.chmod(0o755)
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps({"runtimes": {"hang": {"path": str(runtime)}}}))
    base = tmp_path / "moord"
    base.mkdir()
    daemon = start_daemon(str(base), "--config-file", str(config))
    hung = None
    try:
        daemon.docker("import", "-", IMAGE, input=tar, check=True)
        env = {**os.environ, "DOCKER_HOST": daemon.host,
               "DOCKER_CONFIG": str(tmp_path / "docker-config")}
        hung = subprocess.Popen([DOCKER_CLI, "run", "--name", "hung", "--runtime", "hang",
                                 IMAGE, "true"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while not (marks / "started").exists():
            assert time.monotonic() < deadline and hung.poll() is None, \
                f"the hung create never started: {hung.communicate()}"
            time.sleep(0.05)
        other = daemon.docker("run", "--rm", IMAGE, "echo", "created beside it", timeout=20)
        assert (other.returncode, other.stdout) == (0, b"created beside it\n"), other.stderr
        assert hung.poll() is None, "the hung create ended early"
        (marks / "release").touch()
        _, err = hung.communicate(timeout=20)
        assert hung.returncode != 0 and b"hang-runtime create failed" in err
    finally:
        (marks / "release").touch()
        if hung is not None and hung.poll() is None:
            hung.kill()
            hung.wait()
        daemon.docker("rm", "-f", "hung")
        stop_daemon(daemon)


def test_attach_over_a_websocket(pair: Pair, names: list[str]) -> None:
    """GET /containers/{id}/attach/ws: the client's messages are stdin; stdout and stderr
    come back raw as binary messages, and the socket closes when the container ends."""
    import asyncio

    import aiohttp

    async def talk(socket_path: str, name: str) -> tuple[set[str], bytes]:
        connector = aiohttp.UnixConnector(path=socket_path)
        async with aiohttp.ClientSession(connector=connector) as session, session.ws_connect(
                f"http://localhost/v1.41/containers/{name}/attach/ws"
                "?stream=1&stdin=1&stdout=1&stderr=1") as ws:
            await ws.send_str("hello\n")
            kinds, output = set(), b""
            async for message in ws:
                kinds.add(message.type.name)
                output += message.data if isinstance(message.data, bytes) \
                    else message.data.encode()
            return kinds, output

    def scenario(daemon: Daemon | Dockerd) -> tuple[set[str], bytes]:
        name = unique_name(names, "ws")
        daemon.docker("run", "-d", "-i", "--name", name, IMAGE, "sh", "-c",
                      "read line; echo got $line; sleep 0.2; echo err >&2", check=True)
        return asyncio.run(asyncio.wait_for(talk(daemon.socket, name), 30))

    ours, theirs = pair.each(scenario)
    assert ours == theirs == ({"BINARY"}, b"got hello\nerr\n")


def test_resize_on_the_heels_of_the_exec_start(pair: Pair, names: list[str]) -> None:
    """A terminal sends its size as soon as the start's 101 comes, before the process
    exists: the resize waits for it, and reaches the exec's TTY (it was lost, as the
    dashboard's terminal found, or changed the container's own TTY instead)."""
    name = unique_name(names, "rz")

    def scenario(daemon: Daemon | Dockerd) -> tuple[bytes, bytes, int]:
        daemon.docker("run", "-d", "-t", "--name", name, IMAGE, "sleep", "300", check=True)
        client = _sdk(daemon)
        try:
            api = client.api
            console = api.exec_create(name, ["stty", "-F", "/dev/console", "size"])["Id"]
            before = api.exec_start(console)
            exec_id = api.exec_create(name, "sh", stdin=True, tty=True)["Id"]
            sock = api.exec_start(exec_id, tty=True, socket=True)._sock
            api.exec_resize(exec_id, height=33, width=111)
            sock.sendall(b"stty size; exit\n")
            output = _read_until(sock, b"33 111", 20)
            sock.close()
            after = api.exec_start(api.exec_create(name, ["stty", "-F", "/dev/console",
                                                          "size"])["Id"])
            assert after == before
            # A resize once the exec has ended: the process is gone.
            for _ in range(200):
                if not api.exec_inspect(exec_id)["Running"]:
                    break
                time.sleep(0.05)
            response = api._post(api._url("/exec/{0}/resize", exec_id),
                                 params={"h": 10, "w": 10})
            return b"33 111" in output, before, (response.status_code, response.json())
        finally:
            client.close()

    ours, theirs = pair.each(scenario)
    assert ours[:2] == (True, theirs[1]), ours
    assert ours == theirs
