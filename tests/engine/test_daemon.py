"""moord as a daemon: bad input never gives a 500, containers outlive a restart,
tcp:// with mutual TLS."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from enginekit import Daemon, start_daemon, stop_daemon
from peers import DOCKER_CLI

from moorage.devkit import busybox

IMAGE = "moortest/busybox:latest"
_HOST_FIELDS = {
    # field: a value of the wrong JSON type, and a negative or odd value of the right one
    "Memory": ("1g", -1), "MemorySwap": ("x", -5), "NanoCpus": ("x", -1),
    "CpuShares": ([], -1), "CpuQuota": ({}, -1), "CpusetCpus": (1, "99-1"),
    "PidsLimit": ("x", -7), "Ulimits": ({}, [{"Name": "bogus", "Soft": -1, "Hard": -2}]),
    "CapAdd": (1, ["CAP_BOGUS"]), "CapDrop": ({}, ["ALL", "x"]), "Privileged": ("yes", 1),
    "ReadonlyRootfs": (1, None), "SecurityOpt": ("x", ["seccomp=/nonexistent"]),
    "Init": ("x", None), "Sysctls": (["x"], {"kernel.bogus": "1"}), "Tmpfs": (["x"], {"": ""}),
    "ShmSize": ("x", -1), "LogConfig": ("x", {"Type": "bogus"}), "GroupAdd": ("x", ["nosuch"]),
    "PidMode": (1, "container:nosuch"), "IpcMode": (1, "bogus"), "UTSMode": (1, "bogus"),
    "Runtime": (1, "bogus"), "Binds": ("x", ["/a:/b:c:d"]), "Mounts": ("x", [{"Type": 1}]),
    "AutoRemove": ("x", None), "RestartPolicy": ("x", {"Name": 5}),
    "ConsoleSize": ("x", [-1, -1]), "OomScoreAdj": ("x", -5000),
}


@pytest.fixture(scope="module")
def image(moord: Daemon, tmp_path_factory: pytest.TempPathFactory) -> str:
    rootfs = tmp_path_factory.mktemp("busybox-daemon") / "rootfs"
    busybox.build_rootfs(str(rootfs))
    tar = subprocess.run(["tar", "-C", str(rootfs), "-c", "."], capture_output=True, check=True)
    moord.docker("import", "-", IMAGE, input=tar.stdout, check=True)
    return IMAGE


def _request(daemon: Daemon, method: str, path: str, body: bytes | None = None) \
        -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("localhost", timeout=30)
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(daemon.socket)
    conn.sock = sock
    try:
        conn.request(method, path, body=body,
                     headers={"Content-Type": "application/json"} if body is not None else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _bad_requests(image: str) -> Iterator[tuple[str, str, bytes | None]]:
    create = "/v1.41/containers/create"
    for body in (b"", b"x", b"{x", b"[1]", b'"s"', b"null", b'{"Image": 1}', b"{\"Image\": \"" +
                 b"a" * 100000 + b"\"}", json.dumps({"Image": image, "Cmd": 5}).encode(),
                 json.dumps({"Image": image, "Env": {"A": 1}}).encode(),
                 json.dumps({"Image": image, "HostConfig": []}).encode(),
                 json.dumps({"Image": "UPPER/ünïcode"}).encode(), b'{"Image": NaN}'):
        yield "POST", create, body
    for field, (wrong, odd) in _HOST_FIELDS.items():
        for value in (wrong, odd):
            if value is not None:
                yield "POST", create, json.dumps({"Image": image, "Cmd": ["true"],
                                                  "HostConfig": {field: value}}).encode()
    for name in ("%C3%BCn%C3%AFcode", "a" * 300, "-x", "x%20y"):
        yield "POST", f"{create}?name={name}", json.dumps({"Image": image}).encode()
    target = "/v1.41/containers/target"
    for path in (f"{target}/kill?signal=BOGUS", f"{target}/kill?signal=999",
                 f"{target}/stop?t=x", f"{target}/stop?signal=NOPE",
                 f"{target}/restart?t=1.5", f"{target}/wait?condition=bogus",
                 f"{target}/rename?name=bad%20name", f"{target}/rename?name=",
                 f"{target}/resize?h=x&w=1", f"{target}/exec",
                 "/v1.41/containers/json?limit=x", "/v1.41/containers/json?filters=x",
                 "/v1.41/containers/json?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D",
                 "/v1.41/containers/json?filters=%5B%5D",
                 "/v1.41/containers/%C3%BC/json", "/v1.41/containers/nosuch/start",
                 "/v1.41/exec/nosuch/start", "/v1.41/exec/nosuch/json",
                 "/v1.41/images/json?filters=x", "/v1.41/images/%C3%BC/json",
                 "/v1.41/images/nosuch/tag?repo=UPPER", "/v1.99/containers/json"):
        method = "GET" if "/json" in path and "exec/nosuch/json" not in path else "POST"
        if path.endswith("/exec/nosuch/json"):
            method = "GET"
        yield method, path, b"{x" if path.endswith("/exec") else None
    for query in ("stdout=1&since=x", "stdout=1&until=yesterday", "stdout=1&tail=-x",
                  "stdout=0&stderr=0"):
        yield "GET", f"{target}/logs?{query}", None
    yield "POST", f"{target}/exec", json.dumps({"Cmd": "true"}).encode()
    yield "POST", f"{target}/exec", json.dumps({"Cmd": []}).encode()
    yield "DELETE", "/v1.41/images/%C3%BC", None


def test_bad_input_never_500(moord: Daemon, image: str) -> None:
    moord.docker("run", "-d", "--name", "target", image, "sleep", "60", check=True)
    created: list[str] = []
    failures: list[str] = []
    try:
        for method, path, body in _bad_requests(image):
            status, raw = _request(moord, method, path, body)
            where = f"{method} {path[:120]} {(body or b'')[:120]!r}"
            if status == 201:  # an odd but valid value: starting it must not 500 either
                container = json.loads(raw)["Id"]
                created.append(container)
                status, raw = _request(moord, "POST", f"/containers/{container}/start")
                if status >= 500:
                    failures.append(f"{where}: start: {raw!r}")
                continue
            if not 400 <= status < 500 or not json.loads(raw).get("message"):
                failures.append(f"{where}: {status} {raw[:300]!r}")
        assert not failures, "\n".join(failures)
        assert _request(moord, "GET", "/_ping") == (200, b"OK")
    finally:
        moord.docker("rm", "-f", "target", *created)


def test_restart_with_live_containers(tmp_path: Path) -> None:
    """With live-restore, containers outlive the daemon and are re-adopted."""
    daemon = start_daemon(str(tmp_path), "--live-restore")
    try:
        rootfs = tmp_path / "rootfs"
        busybox.build_rootfs(str(rootfs))
        tar = subprocess.run(["tar", "-C", str(rootfs), "-c", "."], capture_output=True,
                             check=True)
        daemon.docker("import", "-", IMAGE, input=tar.stdout, check=True)
        daemon.docker("run", "-d", "--name", "lives", IMAGE, "sh", "-c",
                      "echo before; trap 'exit 3' TERM; while :; do sleep 0.1; done",
                      check=True)
        daemon.docker("run", "-d", "--name", "exits", IMAGE, "sh", "-c", "sleep 1; exit 5",
                      check=True)
        pid = daemon.docker("inspect", "-f", "{{.State.Pid}}", "lives").stdout.strip()
        stop_daemon(daemon)
        time.sleep(2)  # "exits" exits while the daemon is down
        daemon = start_daemon(str(tmp_path), "--live-restore")
        state = daemon.docker("inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "lives")
        assert state.stdout.decode().split() == ["running", pid.decode()], state.stderr
        exited = daemon.docker("ps", "-a", "--filter", "name=exits", "--format", "{{.Status}}")
        assert exited.stdout.decode().startswith("Exited (5)"), exited
        assert daemon.docker("logs", "lives").stdout == b"before\n"
        assert daemon.docker("stop", "lives").returncode == 0
        assert daemon.docker("inspect", "-f", "{{.State.ExitCode}}", "lives").stdout == b"3\n"
        assert daemon.docker("rm", "lives", "exits").returncode == 0
    finally:
        daemon.docker("rm", "-f", "lives", "exits")
        stop_daemon(daemon)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _certificates(directory: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as Docker's
    "Protect the Docker daemon socket" guide makes them."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem",
             "-out", "ca.pem", "-days", "1", "-subj", "/CN=moor-test-ca", cwd=directory)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        (directory / f"{name}.ext").write_text(ext + "\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-key.pem", "-out",
                 f"{name}.csr", "-subj", f"/CN={name}", cwd=directory)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "1", "-extfile",
                 f"{name}.ext", cwd=directory)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    return subprocess.run([DOCKER_CLI, *args], capture_output=True, timeout=30, env=env)


def _copy_in_and_back(tmp_path: Path, host: list[str]) -> None:
    """docker cp of a few MB into a container and back over `host`: its body is read
    from the socket by moord's extracting thread on plain TCP, through aiohttp over TLS."""
    tree = tmp_path / "tree"
    tree.mkdir()
    for n in range(3):
        (tree / f"f{n}").write_bytes(os.urandom(1_500_000 + n))
    created = _cli(*host, "create", "--name", "cp", "busybox", "true")
    assert created.returncode == 0, created.stderr
    into = _cli(*host, "cp", str(tree), "cp:/tree")
    assert into.returncode == 0, into.stderr
    out = _cli(*host, "cp", "cp:/tree", str(tmp_path / "back"))
    assert out.returncode == 0, out.stderr
    for n in range(3):
        assert (tmp_path / "back" / f"f{n}").read_bytes() == (tree / f"f{n}").read_bytes()


def test_tcp_mutual_tls(tmp_path: Path, busybox_tar: bytes) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    _certificates(certs)
    port = _free_port()
    host = f"tcp://127.0.0.1:{port}"
    # daemon.json's tls* keys; -H on the command line adds the tcp:// host.
    config = tmp_path / "daemon.json"
    config.write_text(json.dumps({"tlsverify": True, "tlscacert": str(certs / "ca.pem"),
                                  "tlscert": str(certs / "server.pem"),
                                  "tlskey": str(certs / "server-key.pem")}))
    (tmp_path / "d").mkdir()
    daemon = start_daemon(str(tmp_path / "d"), "-H", host, "--config-file", str(config))
    try:
        ca = ["--tlscacert", str(certs / "ca.pem")]
        good = _cli("--tlsverify", *ca, "--tlscert", str(certs / "client.pem"), "--tlskey",
                    str(certs / "client-key.pem"), "-H", host, "version", "--format",
                    "{{.Server.Os}}")
        assert (good.returncode, good.stdout) == (0, b"linux\n"), good.stderr
        # The docker CLI half-closes the TLS stream (close_notify) before it reads an
        # attached container's output: the output must still come.
        tls = ["--tlsverify", *ca, "--tlscert", str(certs / "client.pem"), "--tlskey",
               str(certs / "client-key.pem"), "-H", host]
        daemon.docker("import", "-", "busybox:latest", input=busybox_tar, check=True)
        ran = _cli(*tls, "run", "--rm", "busybox", "echo", "over tls")
        assert (ran.returncode, ran.stdout) == (0, b"over tls\n"), ran.stderr
        _copy_in_and_back(tmp_path, tls)
        no_cert = _cli("--tlsverify", *ca, "-H", host, "version")
        assert no_cert.returncode != 0
        plain = _cli("-H", host, "version")
        assert plain.returncode != 0
    finally:
        stop_daemon(daemon)


def test_plain_tcp_only_when_asked(tmp_path: Path, busybox_tar: bytes) -> None:
    host = f"tcp://127.0.0.1:{_free_port()}"
    (tmp_path / "refused").mkdir()
    with pytest.raises(RuntimeError, match="without encryption"):
        start_daemon(str(tmp_path / "refused"), "-H", host)
    (tmp_path / "plain").mkdir()
    daemon = start_daemon(str(tmp_path / "plain"), "-H", host, "--tls=false")
    try:
        result = _cli("-H", host, "version", "--format", "{{.Server.Os}}")
        assert (result.returncode, result.stdout) == (0, b"linux\n"), result.stderr
        assert "without encryption" in daemon.log()
        daemon.docker("import", "-", "busybox:latest", input=busybox_tar, check=True)
        _copy_in_and_back(tmp_path, ["-H", host])
    finally:
        stop_daemon(daemon)
