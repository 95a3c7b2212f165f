"""/_ping, /version, /info and API version negotiation, through the real docker CLI."""

from __future__ import annotations

import http.client
import json
import socket

from enginekit import Daemon


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost")
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def request(daemon: Daemon, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = _UnixConnection(daemon.socket)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_ping_headers(moord: Daemon) -> None:
    for method in ("GET", "HEAD"):
        status, headers, body = request(moord, method, "/_ping")
        assert status == 200
        assert headers["Api-Version"] == "1.55"
        assert headers["Ostype"] == "linux"
        assert headers["Server"].startswith("moorage/")
        assert body == (b"OK" if method == "GET" else b"")


def test_version_prefixes(moord: Daemon) -> None:
    status, _, body = request(moord, "GET", "/v1.41/version")
    assert status == 200 and json.loads(body)["ApiVersion"] == "1.55"
    status, _, body = request(moord, "GET", "/v1.40/version")
    assert status == 400 and "too old" in json.loads(body)["message"]
    status, _, body = request(moord, "GET", "/v1.99/version")
    assert status == 400 and "too new" in json.loads(body)["message"]
    status, _, body = request(moord, "GET", "/v1.41/no-such-thing")
    assert status == 404 and json.loads(body) == {"message": "page not found"}


def test_docker_cli_version_and_info(moord: Daemon) -> None:
    result = moord.docker("version", "--format", "{{.Server.APIVersion}}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() == "1.55"
    result = moord.docker("info", "--format", "{{.OSType}} {{.Driver}} {{.DockerRootDir}}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split() == ["linux", "overlay2", moord.data_root]


def test_docker_sdk_ping(moord: Daemon) -> None:
    import docker

    client = docker.DockerClient(base_url=moord.host)
    try:
        assert client.ping() is True
        assert client.version()["ApiVersion"] == "1.55"
    finally:
        client.close()
