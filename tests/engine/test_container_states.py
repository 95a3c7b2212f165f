"""The container state machine under a real moord: kill and stop return once the exit is
recorded, rm -f at any moment leaves no shim, init or mount behind, the daemon's stop
stops its containers unless live-restore, ordering within a second, cgroupns, refused
restart policies. Where dockerd behaves the same, the same test runs against it."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from enginekit import Daemon, start_daemon, stop_daemon
from peers import Dockerd, dockerd_available, start_dockerd, stop_dockerd

IMAGE = "moortest/busybox:latest"




@pytest.fixture(scope="module")
def image(moord: Daemon, busybox_tar: bytes) -> str:
    moord.docker("import", "-", IMAGE, input=busybox_tar, check=True)
    return IMAGE


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory: pytest.TempPathFactory, busybox_tar: bytes) -> Iterator[Dockerd]:
    if not dockerd_available():
        pytest.skip("dockerd is not installed")
    daemon = start_dockerd(str(tmp_path_factory.mktemp("dockerd-states")))
    try:
        daemon.docker("import", "-", IMAGE, input=busybox_tar, check=True)
        yield daemon
    finally:
        stop_dockerd(daemon)


@pytest.fixture(params=["moord", "dockerd"])
def daemon(request: pytest.FixtureRequest, image: str) -> Daemon | Dockerd:
    return request.getfixturevalue(request.param)


def _name() -> str:
    return f"st-{uuid.uuid4().hex[:10]}"


def _out(result: subprocess.CompletedProcess) -> str:
    return result.stdout.decode().strip()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] != b"Z"
    except OSError:
        return False


def _shim_of(init_pid: int) -> int:
    with open(f"/proc/{init_pid}/stat", "rb") as f:
        return int(f.read().rpartition(b")")[2].split()[1])


def test_kill_returns_once_dead(daemon: Daemon | Dockerd) -> None:
    name = _name()
    daemon.docker("run", "-d", "--name", name, IMAGE, "sleep", "999", check=True)
    try:
        assert daemon.docker("kill", name).returncode == 0
        state = daemon.docker("inspect", "-f",
                              "{{.State.ExitCode}} {{.State.Running}} {{.State.Status}}", name)
        assert _out(state) == "137 false exited"
        assert daemon.docker("rm", name).returncode == 0
    finally:
        daemon.docker("rm", "-f", name)


def test_stop_returns_once_dead(daemon: Daemon | Dockerd) -> None:
    name = _name()
    daemon.docker("run", "-d", "--name", name, IMAGE, "sleep", "999", check=True)
    try:
        assert daemon.docker("stop", "-t", "1", name).returncode == 0
        state = daemon.docker("inspect", "-f", "{{.State.ExitCode}} {{.State.Running}}", name)
        assert _out(state) == "137 false"
    finally:
        daemon.docker("rm", "-f", name)


def test_rm_force_ends_shim_and_init(moord: Daemon, image: str) -> None:
    name = _name()
    moord.docker("run", "-d", "--name", name, image, "sleep", "999", check=True)
    pid = int(_out(moord.docker("inspect", "-f", "{{.State.Pid}}", name)))
    shim = _shim_of(pid)
    rootfs = os.path.join(moord.data_root, "containers",
                          _out(moord.docker("inspect", "-f", "{{.Id}}", name)), "rootfs")
    assert moord.docker("rm", "-f", name).returncode == 0
    assert not _alive(pid)
    assert not _alive(shim)
    assert not os.path.ismount(rootfs)


class _Api:
    """Raw Engine API requests on the daemon's socket, one connection each."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("localhost", timeout=60)
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(60)
        sock.connect(self.socket_path)
        connection.sock = sock
        try:
            payload = json.dumps(body).encode() if body is not None else None
            connection.request(method, path, payload,
                               {"Content-Type": "application/json"} if payload else {})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()


def test_rm_force_races_start_and_exit(moord: Daemon, image: str) -> None:
    """create/start/rm -f from several clients at once: never a 500, nothing left."""
    api = _Api(moord.socket)
    failures: list[str] = []
    deadline = time.monotonic() + 15

    def start(cid: str) -> None:
        status, raw = api.call("POST", f"/containers/{cid}/start")
        if status >= 500:
            failures.append(f"start {status} {raw[:200]!r}")

    def client(worker: int) -> None:
        round_ = 0
        while time.monotonic() < deadline:
            round_ += 1
            command = ["sleep", "999"] if round_ % 2 else ["true"]
            status, raw = api.call("POST", f"/containers/create?name=race-{worker}-{round_}",
                                   {"Image": image, "Cmd": command})
            if status != 201:
                failures.append(f"create {status} {raw[:200]!r}")
                continue
            cid = json.loads(raw)["Id"]
            starter = threading.Thread(target=start, args=(cid,))
            starter.start()
            time.sleep(0.002 * (round_ % 5))
            status, raw = api.call("DELETE", f"/containers/{cid}?force=1")
            if status >= 500 or status not in (204, 404):
                failures.append(f"rm -f {status} {raw[:200]!r}")
            starter.join(60)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    left = _out(moord.docker("ps", "-aq", "--filter", "name=race-"))
    if left:
        moord.docker("rm", "-f", *left.split())
    assert not failures, "\n".join(failures[:20])
    assert not left
    shims = os.listdir(os.path.join(moord.exec_root, "shims"))
    assert not [s for s in shims if s.endswith(".sock")
                and os.path.exists(os.path.join(moord.exec_root, "shims", s))
                and _connects(os.path.join(moord.exec_root, "shims", s))]


def _connects(path: str) -> bool:
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.connect(path)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def test_ps_order_and_filters_within_a_second(moord: Daemon, image: str) -> None:
    made = [_name() for _ in range(4)]
    try:
        for name in made:
            moord.docker("create", "--name", name, image, "true", check=True)
        listed = _out(moord.docker("ps", "-a", "--format", "{{.Names}}",
                                   "--filter", "name=st-")).split()
        assert [n for n in listed if n in made] == made[::-1]
        since = _out(moord.docker("ps", "-a", "--format", "{{.Names}}",
                                  "--filter", f"since={made[1]}")).split()
        assert set(since) & set(made) == set(made[2:])
        before = _out(moord.docker("ps", "-a", "--format", "{{.Names}}",
                                   "--filter", f"before={made[2]}")).split()
        assert set(before) & set(made) == set(made[:2])
    finally:
        moord.docker("rm", "-f", *made)


def test_name_filter_that_backtracks(moord: Daemon, image: str) -> None:
    name = "st-" + "a" * 40
    moord.docker("create", "--name", name, image, "true", check=True)
    try:
        started = time.monotonic()
        result = moord.docker("ps", "-a", "--filter", "name=(a+)+$", "--format", "{{.Names}}")
        assert time.monotonic() - started < 10
        assert (result.returncode == 0 and name in _out(result)) or \
            "too long" in result.stderr.decode()
        assert moord.docker("version").returncode == 0
    finally:
        moord.docker("rm", "-f", name)


def test_cgroupns(daemon: Daemon | Dockerd) -> None:
    host_mode = "private" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "host"
    name = _name()
    daemon.docker("create", "--name", name, IMAGE, "true", check=True)
    try:
        mode = daemon.docker("inspect", "-f", "{{.HostConfig.CgroupnsMode}}", name)
        assert _out(mode) == host_mode
    finally:
        daemon.docker("rm", "-f", name)
    private = daemon.docker("run", "--rm", "--cgroupns", "private", IMAGE, "cat",
                            "/proc/self/cgroup")
    assert private.returncode == 0, private.stderr
    paths = {line.split(":", 2)[2] for line in _out(private).splitlines()}
    assert paths == {"/"}, paths


def test_restart_policy_checked(moord: Daemon, image: str) -> None:
    result = moord.docker("create", "--restart", "always:3", image, "true")
    assert result.returncode != 0
    assert "maximum retry count cannot be used with restart policy 'always'" \
        in result.stderr.decode()
    name = _name()
    moord.docker("create", "--name", name, "--restart", "no", image, "true", check=True)
    assert moord.docker("rm", name).returncode == 0


def test_daemon_stop_stops_containers(tmp_path: Path, busybox_tar: bytes) -> None:
    """Without live-restore (Docker's default) the containers stop with the daemon and
    their rootfs is unmounted; the daemon exits promptly."""
    daemon = start_daemon(str(tmp_path))
    try:
        daemon.docker("import", "-", IMAGE, input=busybox_tar, check=True)
        daemon.docker("run", "-d", "--name", "goes", IMAGE, "sh", "-c",
                      "trap 'exit 3' TERM; while :; do sleep 0.1; done", check=True)
        daemon.docker("run", "-d", "--name", "deaf", "--stop-timeout", "1", IMAGE, "sleep",
                      "999", check=True)
        pids = [int(_out(daemon.docker("inspect", "-f", "{{.State.Pid}}", n)))
                for n in ("goes", "deaf")]
        shims = [_shim_of(p) for p in pids]
        ids = [_out(daemon.docker("inspect", "-f", "{{.Id}}", n)) for n in ("goes", "deaf")]
        daemon.process.send_signal(15)
        daemon.process.wait(timeout=25)
        assert not any(_alive(p) for p in pids + shims)
        for cid in ids:
            assert not os.path.ismount(os.path.join(daemon.data_root, "containers", cid,
                                                    "rootfs"))
        daemon = start_daemon(str(tmp_path))
        codes = daemon.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}",
                              "goes", "deaf")
        assert _out(codes).splitlines() == ["exited 3", "exited 137"]
    finally:
        daemon.docker("rm", "-f", "goes", "deaf")
        stop_daemon(daemon)


def test_daemon_stop_with_hung_clients(tmp_path: Path, busybox_tar: bytes) -> None:
    """SIGTERM ends attach and wait connections at once: moord exits within seconds.
    With live-restore the container keeps running and is adopted again."""
    daemon = start_daemon(str(tmp_path), "--live-restore")
    clients: list[subprocess.Popen] = []
    try:
        daemon.docker("import", "-", IMAGE, input=busybox_tar, check=True)
        daemon.docker("run", "-d", "-i", "--name", "held", IMAGE, "cat", check=True)
        env = {**os.environ, "DOCKER_HOST": daemon.host,
               "DOCKER_CONFIG": str(tmp_path / "docker-config")}
        for command in (["attach", "held"], ["wait", "held"]):
            clients.append(subprocess.Popen(["docker", *command], env=env,
                                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
        time.sleep(1)
        pid = int(_out(daemon.docker("inspect", "-f", "{{.State.Pid}}", "held")))
        started = time.monotonic()
        daemon.process.send_signal(15)
        daemon.process.wait(timeout=20)
        assert time.monotonic() - started < 5
        assert _alive(pid)
        daemon = start_daemon(str(tmp_path), "--live-restore")
        state = daemon.docker("inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "held")
        assert _out(state) == f"running {pid}"
    finally:
        for client in clients:
            client.kill()
            client.wait()
        daemon.docker("rm", "-f", "held")
        stop_daemon(daemon)


def test_start_with_a_vanished_bind_source(daemon: Daemon | Dockerd, tmp_path: Path) -> None:
    """Refused at start as at create, before anything runs: the exit code stays (it was
    exit 127, as if the command were missing)."""
    source = tmp_path / "gone"
    source.mkdir()
    name = _name()
    daemon.docker("create", "--name", name, "--mount", f"type=bind,src={source},dst=/x",
                  IMAGE, "true", check=True)
    try:
        source.rmdir()
        result = daemon.docker("start", name)
        assert result.returncode != 0
        assert "bind source path does not exist" in result.stderr.decode()
        code = daemon.docker("inspect", "-f", "{{.State.ExitCode}} {{.State.Status}}", name)
        assert _out(code) == "0 created", result.stderr
    finally:
        daemon.docker("rm", "-f", name)


def test_start_with_a_missing_command(daemon: Daemon | Dockerd) -> None:
    name = _name()
    daemon.docker("create", "--name", name, IMAGE, "/no/such/command", check=True)
    try:
        assert daemon.docker("start", name).returncode != 0
        code = daemon.docker("inspect", "-f", "{{.State.ExitCode}} {{.State.Status}}", name)
        assert _out(code) == "127 created"
    finally:
        daemon.docker("rm", "-f", name)


def test_many_clients_on_one_container(moord: Daemon, image: str) -> None:
    """8 clients start, kill, exec, attach, read logs, inspect and force-remove one
    container (re-created under its name) for a bounded time: never a 500."""
    import random

    api = _Api(moord.socket)
    name = f"shared-{uuid.uuid4().hex[:8]}"
    body = {"Image": image, "Cmd": ["sh", "-c", "while :; do echo x; sleep 0.01; done"]}
    failures: list[str] = []
    deadline = time.monotonic() + 12
    api.call("POST", f"/containers/create?name={name}", body)

    def step(rng: random.Random, calls: list[str]) -> tuple[str, int, bytes]:
        action = rng.choice(["start", "kill", "exec", "logs", "inspect", "rm", "stop",
                             "create", "wait", "attach"])
        calls.append(action)
        if action == "start":
            return (action, *api.call("POST", f"/containers/{name}/start"))
        if action == "kill":
            return (action, *api.call("POST", f"/containers/{name}/kill"))
        if action == "stop":
            return (action, *api.call("POST", f"/containers/{name}/stop?t=0"))
        if action == "exec":
            status, raw = api.call("POST", f"/containers/{name}/exec",
                                   {"Cmd": ["echo", "hi"], "AttachStdout": False})
            if status != 201:
                return action, status, raw
            exec_id = json.loads(raw)["Id"]
            return (action, *api.call("POST", f"/exec/{exec_id}/start", {"Detach": True}))
        if action == "logs":
            return (action, *api.call("GET", f"/containers/{name}/logs?stdout=1&tail=5"))
        if action == "inspect":
            return (action, *api.call("GET", f"/containers/{name}/json"))
        if action == "attach":
            return (action, *api.call("POST", f"/containers/{name}/attach?stream=1&stdout=1"))
        if action == "wait":
            return (action, *api.call("POST", f"/containers/{name}/wait?condition=next-exit"))
        if action == "rm":
            return (action, *api.call("DELETE", f"/containers/{name}?force=1"))
        return (action, *api.call("POST", f"/containers/create?name={name}", body))

    def client(seed: int) -> None:
        rng = random.Random(seed)
        calls: list[str] = []
        while time.monotonic() < deadline:
            try:
                action, status, raw = step(rng, calls)
            except OSError as err:
                failures.append(f"{calls[-1]}: {err!r}")
                continue
            if status >= 500:
                failures.append(f"{action}: {status} {raw[:200]!r}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    killer = threading.Thread(target=lambda: [
        api.call("POST", f"/containers/{name}/kill") for _ in iter(
            lambda: time.monotonic() < deadline + 1, False)])
    killer.start()
    # Waits for a next exit end with the removal of the container.
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline + 60:
        api.call("DELETE", f"/containers/{name}?force=1")
        time.sleep(0.2)
    killer.join(30)
    moord.docker("rm", "-f", name)
    assert not any(t.is_alive() for t in threads)
    assert not failures, "\n".join(failures[:20])


def test_one_name_one_container(moord: Daemon, image: str) -> None:
    """Creates of one name at once: one wins, the others get 409, one record remains
    (the store's OR REPLACE used to drop the other row while memory kept both)."""
    api = _Api(moord.socket)
    name = _name()
    results: list[int] = []

    def create() -> None:
        results.append(api.call("POST", f"/containers/create?name={name}",
                                {"Image": image, "Cmd": ["true"]})[0])

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert sorted(results) == [201] + [409] * 7
        listed = _out(moord.docker("ps", "-aq", "--filter", f"name=^/{name}$"))
        assert len(listed.split()) == 1
    finally:
        moord.docker("rm", "-f", name)


def test_restart_after_a_crash_stops_what_was_left(tmp_path: Path, busybox_tar: bytes) -> None:
    """Without live-restore, a container a killed daemon left running is stopped when
    the daemon starts again (dockerd's restore), not adopted."""
    daemon = start_daemon(str(tmp_path))
    try:
        daemon.docker("import", "-", IMAGE, input=busybox_tar, check=True)
        daemon.docker("run", "-d", "--name", "left", IMAGE, "sleep", "999", check=True)
        pid = int(_out(daemon.docker("inspect", "-f", "{{.State.Pid}}", "left")))
        shim = _shim_of(pid)
        daemon.process.kill()
        daemon.process.wait(timeout=10)
        assert _alive(pid)
        os.unlink(daemon.socket)  # left by the kill: start_daemon waits for a new one
        daemon = start_daemon(str(tmp_path))
        state = daemon.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "left")
        assert _out(state) == "exited 137"
        assert not _alive(pid) and not _alive(shim)
        assert daemon.docker("rm", "left").returncode == 0
    finally:
        daemon.docker("rm", "-f", "left")
        stop_daemon(daemon)


def test_paused_container_stop_and_force_removal(daemon: Daemon | Dockerd) -> None:
    name = _name()
    daemon.docker("run", "-d", "--name", name, IMAGE, "sleep", "999", check=True)
    try:
        daemon.docker("pause", name, check=True)
        refused = daemon.docker("rm", name)
        assert refused.returncode != 0 and "paused container" in refused.stderr.decode()
        assert daemon.docker("stop", "-t", "1", name).returncode == 0
        state = daemon.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name)
        assert _out(state) == "exited 137"
        daemon.docker("start", name, check=True)
        daemon.docker("pause", name, check=True)
        assert daemon.docker("rm", "-f", name).returncode == 0
        assert daemon.docker("inspect", name).returncode != 0
    finally:
        daemon.docker("rm", "-f", name)


def test_a_lost_shim_takes_its_processes(moord: Daemon, image: str) -> None:
    """A shim that dies without an exit record: the container's processes are killed
    before its exit is recorded, so a later rm leaves nothing running."""
    name = _name()
    moord.docker("run", "-d", "--name", name, image, "sleep", "999", check=True)
    try:
        pid = int(_out(moord.docker("inspect", "-f", "{{.State.Pid}}", name)))
        os.kill(_shim_of(pid), 9)
        deadline = time.monotonic() + 10
        while _out(moord.docker("inspect", "-f", "{{.State.Running}}", name)) != "false":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert not _alive(pid)
        assert moord.docker("rm", name).returncode == 0
    finally:
        moord.docker("rm", "-f", name)


def test_a_failed_auto_removal_ends_run_rm_with_its_error(moord: Daemon, image: str) -> None:
    """As dockerd's SetRemovalError: `run --rm` ends (125, "Error waiting for container")
    instead of waiting forever, and a later rm finishes the removal. The container's
    folder, bound onto itself, cannot be renamed away (EBUSY): a real failure."""
    name = _name()
    finished: list[subprocess.CompletedProcess] = []
    client = threading.Thread(target=lambda: finished.append(
        moord.docker("run", "--rm", "--name", name, image, "sleep", "2")))
    client.start()
    directory, bound = "", False
    try:
        deadline = time.monotonic() + 30
        while not directory and time.monotonic() < deadline:
            found = moord.docker("inspect", "-f", "{{.State.Running}} {{.Id}}", name)
            running, _, container_id = _out(found).partition(" ")
            if running == "true":
                directory = os.path.join(moord.data_root, "containers", container_id)
        subprocess.run(["mount", "--bind", directory, directory], check=True)
        bound = True
        client.join(timeout=60)
        assert finished and finished[0].returncode == 125, finished
        assert b"unable to remove filesystem for" in finished[0].stderr, finished[0].stderr
    finally:
        client.join(timeout=60)
        if bound:  # os.path.ismount does not see a bind within one filesystem
            subprocess.run(["umount", directory], check=True)
        moord.docker("rm", "-f", name)
    assert moord.docker("ps", "-aq", "--filter", f"name=^{name}$").stdout == b""
