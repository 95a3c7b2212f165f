"""/_ping, /version, /info and API version negotiation, through the real docker CLI."""

from __future__ import annotations

import http.client
import json
import socket

import pytest
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


def test_info_reports_the_daemon_itself(moord: Daemon) -> None:
    """Fields that once said nothing (0, ""): the daemon's time, open files, threads,
    proxy settings (moby masks a URL's password), default log driver, log drivers."""
    import os
    import time

    from moorage import timefmt

    _, _, body = request(moord, "GET", "/info")
    info = json.loads(body)
    assert abs(timefmt.parse_ns(info["SystemTime"]) - time.time_ns()) < 60 * 10**9
    assert info["NFd"] > 3 and info["NGoroutines"] >= 1
    # the suite's guard proxy, which the daemon inherits (tests/conftest.py)
    assert info["HttpsProxy"] == os.environ.get("HTTPS_PROXY", "")
    assert info["LoggingDriver"] == "json-file"
    assert "local" in info["Plugins"]["Log"]


def test_proxy_credentials_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    from moorage.daemon.system.info import _proxy

    monkeypatch.setenv("HTTPS_PROXY", "http://me:secret@127.0.0.1:3128")
    assert _proxy("HTTPS_PROXY") == "http://me:xxxxx@127.0.0.1:3128"
    monkeypatch.delenv("HTTPS_PROXY")
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:3128")
    assert _proxy("HTTPS_PROXY") == "http://127.0.0.1:3128"
