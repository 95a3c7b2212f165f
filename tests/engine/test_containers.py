"""The container lifecycle through the real docker CLI against moord."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from enginekit import Daemon, unique_name
from ptykit import run_in_pty

from moorage.devkit import busybox

IMAGE = "moortest/busybox:latest"


@pytest.fixture(scope="session")
def image(moord: Daemon, tmp_path_factory: pytest.TempPathFactory) -> str:
    """busybox imported into moord once per session (import is the image store's path)."""
    rootfs = tmp_path_factory.mktemp("busybox-image") / "rootfs"
    busybox.build_rootfs(str(rootfs))
    tar = subprocess.run(["tar", "-C", str(rootfs), "-c", "."], capture_output=True, check=True)
    moord.docker("import", "-", IMAGE, input=tar.stdout, check=True)
    return IMAGE


@pytest.fixture
def names(moord: Daemon) -> Iterator[list[str]]:
    """Container names a test uses; removed (forced) at teardown."""
    made: list[str] = []
    yield made
    if made:
        moord.docker("rm", "-f", *made)



def out(result: subprocess.CompletedProcess) -> str:
    return result.stdout.decode()


def test_run_rm_echo(moord: Daemon, image: str) -> None:
    result = moord.docker("run", "--rm", image, "echo", "hi")
    assert (result.returncode, out(result)) == (0, "hi\n"), result.stderr
    assert moord.docker("ps", "-aq").stdout == b""


@pytest.mark.parametrize(("args", "code", "message"), [
    (["sh", "-c", "exit 3"], 3, ""),
    (["nosuch"], 127, "executable file not found"),
    (["/etc/passwd"], 126, "permission denied"),
])
def test_exit_codes(moord: Daemon, image: str, args: list[str], code: int, message: str) -> None:
    result = moord.docker("run", "--rm", image, *args)
    assert result.returncode == code, result.stderr
    assert message in result.stderr.decode()
    assert moord.docker("ps", "-aq").stdout == b""


def test_missing_image(moord: Daemon) -> None:
    result = moord.docker("run", "--rm", "nosuchimage:v1", "true")
    assert result.returncode == 125
    assert "Unable to find image 'nosuchimage:v1' locally" in result.stderr.decode()


def test_run_options(moord: Daemon, image: str, names: list[str], tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "data.txt").write_text("from the host\n")
    # The container runs as uid 1000: it must be able to reach the bind's source.
    for directory in (tmp_path.parent.parent, tmp_path.parent, tmp_path, shared):
        directory.chmod(0o755)
    name = unique_name(names, "t")
    cg = "/sys/fs/cgroup"
    limits = (f"cat {cg}/memory.max {cg}/cpu.max {cg}/pids.max 2>/dev/null || "
              f"cat {cg}/memory/memory.limit_in_bytes {cg}/cpu/cpu.cfs_quota_us "
              f"{cg}/pids/pids.max")
    script = ("echo $FOO; pwd; id -u; cat /data/data.txt; touch /scratch/x && echo tmpfs-ok; "
              f"cat /etc/hostname; touch /rootfile 2>/dev/null || echo read-only; {limits}")
    result = moord.docker("run", "--name", name, "-e", "FOO=bar", "-w", "/tmp", "-u", "1000",
                          "-v", f"{shared}:/data:ro", "--tmpfs", "/scratch", "--read-only",
                          "--memory", "64m", "--cpus", "0.5", "--pids-limit", "20",
                          "--hostname", "box", "--entrypoint", "sh", image, "-c", script)
    assert result.returncode == 0, result.stderr
    lines = out(result).splitlines()
    assert lines[:7] == ["bar", "/tmp", "1000", "from the host", "tmpfs-ok", "box", "read-only"]
    assert lines[7] == str(64 * 1024 * 1024)
    assert lines[8] in ("50000 100000", "50000")
    assert lines[9] == "20"
    inspect = json.loads(moord.docker("inspect", name).stdout)[0]
    assert inspect["Name"] == f"/{name}"
    assert inspect["Config"]["Entrypoint"] == ["sh"]
    assert inspect["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert inspect["HostConfig"]["NanoCpus"] == 500_000_000
    assert inspect["State"]["Status"] == "exited"
    assert inspect["State"]["ExitCode"] == 0


def test_cap_drop_and_init(moord: Daemon, image: str) -> None:
    result = moord.docker("run", "--rm", "--cap-drop", "CHOWN", image,
                          "sh", "-c", "chown 1000 /tmp 2>&1; echo rc=$?")
    assert "rc=1" in out(result)
    result = moord.docker("run", "--rm", "--init", image, "sh", "-c",
                          "cat /proc/1/cmdline | tr '\\0' ' '")
    assert out(result).startswith("/sbin/docker-init -- sh"), result.stderr


def test_devices(moord: Daemon, image: str) -> None:
    result = moord.docker("run", "--rm", "--device", "/dev/null:/dev/extra/null:rw", image,
                          "sh", "-c", "echo x > /dev/extra/null && "
                          "stat -c '%F %t:%T' /dev/extra/null")
    assert out(result) == "character special file 1:3\n", result.stderr
    # The cgroup keeps to the permissions given, with moor-runtime as with runc (a
    # device outside the defaults every container may use: opened, never written).
    for runtime in ("moor-runtime", "runc"):
        result = moord.docker("run", "--rm", "--runtime", runtime, "--device",
                              "/dev/loop-control:/dev/x:r", image, "sh", "-c",
                              ": < /dev/x && echo read; (: > /dev/x) 2>&1")
        assert out(result) == "read\nsh: can't create /dev/x: Operation not permitted\n", \
            (runtime, result)
    result = moord.docker("run", "--rm", "--device", "/etc/passwd", image, "true")
    assert 'error gathering device information while adding custom device "/etc/passwd": ' \
        "not a device node" in result.stderr.decode()


def test_passwd_symlink_stays_in_the_image(moord: Daemon, tmp_path: Path) -> None:
    """An image whose /etc/passwd points out of its rootfs never reads the host's."""
    rootfs = tmp_path / "rootfs"
    busybox.build_rootfs(str(rootfs))
    (rootfs / "etc/passwd").unlink()
    (rootfs / "etc/passwd").symlink_to("../../../../../../../etc/passwd")
    tar = subprocess.run(["tar", "-C", str(rootfs), "-c", "."], capture_output=True, check=True)
    name = "hostile-passwd:latest"
    moord.docker("import", "-", name, input=tar.stdout, check=True)
    try:
        # `daemon` exists in the host's passwd (Debian), not in the image's.
        result = moord.docker("run", "--rm", "-u", "daemon", name, "id", "-u")
        assert result.returncode != 0
        assert "unable to find user daemon" in result.stderr.decode()
    finally:
        moord.docker("rmi", name)


def test_oom_killed(moord: Daemon, image: str, names: list[str]) -> None:
    name = unique_name(names, "t")
    result = moord.docker("run", "--name", name, "--memory", "8m", "--memory-swap", "8m",
                          image, "sh", "-c", "x=$(head -c 64000000 /dev/zero | tr '\\0' a)")
    assert result.returncode == 137, result.stderr
    assert out(moord.docker("inspect", "-f", "{{.State.OOMKilled}}", name)) == "true\n"
    moord.docker("rm", name)
    moord.docker("run", "--name", name, image, "true")
    assert out(moord.docker("inspect", "-f", "{{.State.OOMKilled}}", name)) == "false\n"


def test_runtime_runc(moord: Daemon, image: str) -> None:
    result = moord.docker("run", "--rm", "--runtime", "runc", image, "sh", "-c",
                          "echo via-runc; exit 4")
    assert (result.returncode, out(result)) == (4, "via-runc\n"), result.stderr


def test_detached_lifecycle(moord: Daemon, image: str, names: list[str]) -> None:
    name = unique_name(names, "t")
    result = moord.docker("run", "-d", "--name", name, image, "sh", "-c",
                          "trap 'echo bye; exit 7' TERM; echo started; "
                          "while true; do sleep 0.1; done")
    assert result.returncode == 0, result.stderr
    follow = subprocess.Popen(
        ["/usr/local/bin/docker", "logs", "-f", name], stdout=subprocess.PIPE,
        env={**os.environ, "DOCKER_HOST": moord.host})
    assert follow.stdout is not None
    assert follow.stdout.readline() == b"started\n"
    ps = out(moord.docker("ps", "--format", "{{.Names}} {{.Status}}"))
    assert f"{name} Up" in ps
    assert moord.docker("stop", "-t", "5", name).returncode == 0
    assert follow.stdout.readline() == b"bye\n"
    assert follow.wait(timeout=10) == 0
    assert out(moord.docker("wait", name)) == "7\n"
    ps_all = out(moord.docker("ps", "-a", "--filter", f"name={name}",
                              "--format", "{{.Status}}"))
    assert ps_all.startswith("Exited (7)")
    assert moord.docker("rm", "-f", name).returncode == 0
    assert moord.docker("inspect", name).returncode == 1


def test_pause_unpause_kill(moord: Daemon, image: str, names: list[str]) -> None:
    name = unique_name(names, "t")
    moord.docker("run", "-d", "--name", name, image, "sleep", "60", check=True)
    assert moord.docker("pause", name).returncode == 0
    state = json.loads(moord.docker("inspect", name).stdout)[0]["State"]
    assert (state["Status"], state["Paused"], state["Running"]) == ("paused", True, True)
    again = moord.docker("pause", name)
    assert again.returncode == 1 and "is already paused" in again.stderr.decode()
    assert moord.docker("unpause", name).returncode == 0
    assert moord.docker("kill", "-s", "KILL", name).returncode == 0
    assert out(moord.docker("wait", name)) == "137\n"
    kill = moord.docker("kill", name)
    assert kill.returncode == 1 and "is not running" in kill.stderr.decode()


def test_stdin_pipe(moord: Daemon, image: str) -> None:
    result = moord.docker("run", "-i", "--rm", image, "cat", input="hi\nthere\n")
    assert out(result) == "hi\nthere\n"


def test_tty_run_and_exec(moord: Daemon, image: str, names: list[str]) -> None:
    output, code = run_in_pty(moord, ["run", "--rm", "-t", image, "sh", "-c",
                                      "tty; stty size; exit 2"])
    assert code == 2
    assert b"/dev/pts/0" in output and b"24 80" in output
    name = unique_name(names, "t")
    moord.docker("run", "-d", "--name", name, image, "sleep", "60", check=True)
    output, code = run_in_pty(moord, ["exec", "-it", name, "sh", "-c", "tty; exit 3"])
    assert code == 3 and b"/dev/pts/" in output
    output, code = run_in_pty(moord, ["exec", "-i", name, "sh"], input=b"echo $((6*7))\nexit\n")
    assert code == 0 and b"42" in output


def test_attach(moord: Daemon, image: str, names: list[str]) -> None:
    name = unique_name(names, "t")
    moord.docker("run", "-d", "--name", name, image, "sh", "-c",
                 "sleep 1; echo attached-output; exit 9", check=True)
    result = moord.docker("attach", name)
    assert result.returncode == 9
    assert "attached-output" in out(result)


def test_sdk(moord: Daemon, image: str) -> None:
    import docker

    client = docker.DockerClient(base_url=moord.host)
    assert client.containers.run(image, ["echo", "sdk"], remove=True) == b"sdk\n"
    container = client.containers.create(image, ["sh", "-c", "echo out; echo err >&2; exit 4"])
    try:
        container.start()
        assert container.wait()["StatusCode"] == 4
        assert container.logs(stdout=True, stderr=False) == b"out\n"
        assert container.logs(stdout=False, stderr=True) == b"err\n"
        container.reload()
        assert container.status == "exited"
    finally:
        container.remove(force=True)
    client.close()


def test_rename_and_name_conflict(moord: Daemon, image: str, names: list[str]) -> None:
    first, second = unique_name(names, "t"), unique_name(names, "t")
    moord.docker("create", "--name", first, image, "true", check=True)
    clash = moord.docker("create", "--name", first, image, "true")
    assert clash.returncode == 1
    assert f'The container name "/{first}" is already in use' in clash.stderr.decode()
    assert moord.docker("rename", first, second).returncode == 0
    assert json.loads(moord.docker("inspect", second).stdout)[0]["Name"] == f"/{second}"


def test_wait_time(moord: Daemon, image: str) -> None:
    started = time.monotonic()
    moord.docker("run", "--rm", image, "true", check=True)
    assert time.monotonic() - started < 5


def _api(moord: Daemon, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
    import http.client
    import socket

    class Connection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(moord.socket)

    conn = Connection("localhost")
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else {}
    finally:
        conn.close()


@pytest.mark.parametrize(("body", "message"), [
    (b"{bad", "invalid"),
    (json.dumps({"Image": IMAGE, "Cmd": ["true"], "HostConfig": {"Memory": "x"}}).encode(),
     "cannot unmarshal string into Go struct field HostConfig.HostConfig.Memory of type int64"),
    (json.dumps({"Image": IMAGE, "Cmd": ["true"], "Tty": "yes"}).encode(),
     "cannot unmarshal string into Go struct field ContainerConfigWrapper.Tty of type bool"),
    (json.dumps({"Image": IMAGE, "Cmd": ["true"],
                 "HostConfig": {"Binds": ["bad$name:/x"]}}).encode(), "invalid characters"),
    (json.dumps({"Image": IMAGE, "Cmd": ["true"],
                 "HostConfig": {"Mounts": [{"Type": "bind", "Source": "/nonexistent-x",
                                            "Target": "/x"}]}}).encode(),
     "bind source path does not exist"),
    (json.dumps({"Image": IMAGE, "Cmd": ["true"],
                 "HostConfig": {"CapAdd": ["NOT_A_CAP"]}}).encode(), "unknown capability"),
])
def test_create_bad_input(moord: Daemon, image: str, body: bytes, message: str) -> None:
    status, reply = _api(moord, "POST", "/containers/create", body)
    assert status == 400
    assert message in reply["message"]


def test_bad_name_missing_container_and_image(moord: Daemon, image: str) -> None:
    result = moord.docker("run", "--name", "bad name!", image, "true")
    assert result.returncode == 125
    assert "Invalid container name (bad name!)" in result.stderr.decode()
    status, reply = _api(moord, "GET", "/containers/nosuch-x/json")
    assert (status, reply["message"]) == (404, "No such container: nosuch-x")
    status, reply = _api(moord, "POST", "/containers/create",
                         json.dumps({"Image": "nosuchimage:v1"}).encode())
    assert status == 404 and "No such image" in reply["message"]
    assert moord.docker("ps", "-aq").stdout == b""
