"""The engine's registry client against the real CNCF distribution registry, driven by
the real docker CLI: pull, push, login, TLS with certs.d, mirrors, and faults."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import bcrypt
import pytest
from aiohttp import web
from distkit import (
    Entry,
    Image,
    Layout,
    Registry,
    free_port,
    layer_tar,
    make_registry,
    rootfs_layer,
)
from enginekit import Daemon, start_daemon, stop_daemon
from registrykit import start_moor, stop_server, write_htpasswd

from moorage.devkit import busybox
from moorage.distribution.auth import TokenCache
from moorage.distribution.client import Registry as Client
from moorage.distribution.mirrors import Endpoint, RegistryConfig


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout.decode()


def err(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0, result.stdout
    return result.stderr.decode()


def inspect(daemon: Daemon, name: str) -> dict:
    return json.loads(ok(daemon.docker("image", "inspect", name)))[0]


def api(daemon: Daemon, method: str, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("localhost", timeout=120)
    conn.sock = socket.socket(socket.AF_UNIX)
    conn.sock.connect(daemon.socket)
    conn.request(method, path)
    response = conn.getresponse()
    return response.status, response.read()


def store_clean(daemon: Daemon) -> None:
    status, body = api(daemon, "POST", "/moor/system/check")
    report = json.loads(body)
    assert status == 200 and report["Clean"], report


@pytest.fixture(scope="module")
def work() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="moor-dist-") as base:
        busybox.build_rootfs(os.path.join(base, "rootfs"))
        yield base


@pytest.fixture(scope="module")
def layout(work: str) -> Layout:
    """busybox (gzip); a multi-layer image with whiteouts, an opaque directory and a zstd
    layer; a two-platform index; a 12 MB layer image (chunked push)."""
    lay = Layout(os.path.join(work, "layout"))
    base = rootfs_layer(os.path.join(work, "rootfs"))
    lay.tag("busybox", lay.image(Image([(base, "gzip")])))
    first = layer_tar([Entry("data", None), Entry("data/keep", b"keep\n"),
                       Entry("data/gone", b"gone\n"), Entry("opq", None),
                       Entry("opq/old", b"old\n")])
    second = layer_tar([Entry("data/.wh.gone", b""), Entry("opq", None),
                        Entry("opq/.wh..wh..opq", b""), Entry("opq/new", b"new\n")])
    lay.tag("multi", lay.image(Image([(base, "gzip"), (first, "gzip"), (second, "zstd")])))
    amd = lay.image(Image([(base, "gzip"), (layer_tar([Entry("arch", b"amd64\n")]), "gzip")]))
    arm = lay.image(Image([(layer_tar([Entry("arch", b"arm64\n")]), "gzip")],
                          architecture="arm64"))
    lay.tag_index("multiarch", [amd, arm])
    big = layer_tar([Entry("big", os.urandom(12 << 20))])
    lay.tag("big", lay.image(Image([(base, "gzip"), (big, "gzip")])))
    return lay


@pytest.fixture(scope="module")
def registry(work: str, layout: Layout) -> Iterator[Registry]:
    reg = make_registry(os.path.join(work, "plain")).start()
    try:
        for tag in ("busybox", "multi", "big"):
            reg.seed(layout.path, tag, tag.replace("busybox", "bb"))
        reg.seed(layout.path, "multiarch", "multiarch", "--all")
        yield reg
    finally:
        reg.stop()


def test_pull_run_and_repo_digests(moord: Daemon, registry: Registry) -> None:
    name = f"{registry.host}/bb:busybox"
    out = ok(moord.docker("pull", name))
    digest = registry.manifest("bb", "busybox")
    assert "busybox: Pulling from bb" in out and "Pull complete" in out
    assert f"Status: Downloaded newer image for {name}" in out
    detail = inspect(moord, name)
    manifest_digest = out.split("Digest: ")[1].split()[0]
    assert detail["RepoDigests"] == [f"{registry.host}/bb@{manifest_digest}"]
    assert detail["Id"] == digest["config"]["digest"]
    assert ok(moord.docker("run", "--rm", name, "echo", "hi")) == "hi\n"
    again = ok(moord.docker("pull", name))
    assert "Already exists" in again and f"Image is up to date for {name}" in again
    # By digest too.
    ok(moord.docker("pull", f"{registry.host}/bb@{manifest_digest}"))
    store_clean(moord)


def test_pull_whiteouts_opaque_zstd(moord: Daemon, registry: Registry) -> None:
    name = f"{registry.host}/multi:multi"
    ok(moord.docker("pull", name))
    out = ok(moord.docker("run", "--rm", name, "sh", "-c",
                          "ls /data; echo -; ls /opq; cat /data/keep"))
    assert out == "keep\n-\nnew\nkeep\n"
    layers = inspect(moord, name)["RootFS"]["Layers"]
    assert len(layers) == 3
    ok(moord.docker("rmi", name))
    store_clean(moord)


def test_pull_platforms(moord: Daemon, registry: Registry) -> None:
    name = f"{registry.host}/multiarch:multiarch"
    ok(moord.docker("pull", name))
    assert ok(moord.docker("run", "--rm", name, "cat", "/arch")) == "amd64\n"
    ok(moord.docker("pull", "--platform", "linux/arm64", name))
    assert inspect(moord, name)["Architecture"] == "arm64"
    assert "no matching manifest for linux/s390x" in err(
        moord.docker("pull", "--platform", "linux/s390x", name))
    ok(moord.docker("rmi", name))


def test_push_monolithic_chunked_mount(moord: Daemon, registry: Registry) -> None:
    ok(moord.docker("pull", f"{registry.host}/big:big"))
    target = f"{registry.host}/pushed/big:v1"
    ok(moord.docker("tag", f"{registry.host}/big:big", target))
    out = ok(moord.docker("push", target))
    assert f"The push refers to repository [{registry.host}/pushed/big]" in out
    assert out.count("Mounted from big") == 2
    # A fresh repository without a known source: real uploads, one of them chunked.
    fresh = f"{registry.host}/fresh/img:v1"
    ok(moord.docker("tag", f"{registry.host}/big:big", fresh))
    out = ok(moord.docker("push", fresh))
    assert out.count("Pushed") == 2 or "Mounted from" in out, out
    digest = out.split("v1: digest: ")[1].split()[0]
    assert f"{registry.host}/fresh/img@{digest}" in inspect(moord, fresh)["RepoDigests"]
    assert out.count("Layer already exists") == 0
    assert "Layer already exists" in ok(moord.docker("push", fresh))
    # The registry serves back what was pushed: skopeo reads it.
    assert registry.manifest("fresh/img", "v1")["layers"] == \
        registry.manifest("big", "big")["layers"]
    assert "An image does not exist locally with the tag" in err(
        moord.docker("push", f"{registry.host}/nothing:here"))
    for name in (target, fresh, f"{registry.host}/big:big"):
        ok(moord.docker("rmi", name))
    store_clean(moord)


def test_pull_errors_before_streaming(moord: Daemon, registry: Registry) -> None:
    assert "manifest unknown" in err(moord.docker("pull", f"{registry.host}/bb:nope"))
    port = free_port()
    assert "connection refused" in err(moord.docker("pull", f"127.0.0.1:{port}/x:y"))
    assert "no such host" in err(moord.docker("pull", "no-such-host.invalid/x"))
    status, body = api(moord, "POST", "/images/create?fromImage=x@sha256:12")
    assert status == 400 and b"invalid reference format" in body, body


# --- auth -------------------------------------------------------------------------------


def test_login_and_auth_pull_push(work: str, layout: Layout, moord: Daemon) -> None:
    htpasswd = os.path.join(work, "htpasswd")
    hashed = bcrypt.hashpw(b"secret", bcrypt.gensalt(rounds=5, prefix=b"2a")).decode()
    Path(htpasswd).write_text(f"alice:{hashed}\n")
    reg = make_registry(os.path.join(work, "auth"), htpasswd=htpasswd).start()
    try:
        name = f"{reg.host}/bb:v1"
        assert "Login Succeeded" not in err(moord.docker("pull", name))
        assert "401 Unauthorized" in err(moord.docker("login", "-u", "alice", "-p", "wrong",
                                                      reg.host))
        assert "Login Succeeded" in ok(moord.docker("login", "-u", "alice", "-p", "secret",
                                                    reg.host))
        subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false",
                        "--dest-creds", "alice:secret", f"oci:{layout.path}:busybox",
                        f"docker://{name}"], check=True, capture_output=True, timeout=120)
        ok(moord.docker("pull", name))
        ok(moord.docker("tag", name, f"{reg.host}/bb:v2"))
        assert "v2: digest:" in ok(moord.docker("push", f"{reg.host}/bb:v2"))
        ok(moord.docker("logout", reg.host))
        assert err(moord.docker("pull", f"{reg.host}/bb:v2"))
        for tag in ("v1", "v2"):
            ok(moord.docker("rmi", f"{reg.host}/bb:{tag}"))
    finally:
        reg.stop()


def test_our_registry_bearer_tokens(work: str, layout: Layout, moord: Daemon) -> None:
    """moord against `moor registry serve --htpasswd`, whose 401s carry a Bearer challenge."""
    base = os.path.join(work, "ours")
    os.makedirs(base, exist_ok=True)
    htpasswd = write_htpasswd(os.path.join(base, "htpasswd"), {"bob": "hunter2"})
    server = start_moor(base, "--htpasswd", htpasswd)
    try:
        name = f"{server.host}/team/bb:v1"
        subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false",
                        "--dest-creds", "bob:hunter2", f"oci:{layout.path}:busybox",
                        f"docker://{name}"], check=True, capture_output=True, timeout=120)
        assert err(moord.docker("pull", name))
        assert "Login Succeeded" in ok(moord.docker("login", "-u", "bob", "-p", "hunter2",
                                                    server.host))
        ok(moord.docker("pull", name))
        ok(moord.docker("tag", name, f"{server.host}/team/bb:v2"))
        assert "v2: digest:" in ok(moord.docker("push", f"{server.host}/team/bb:v2"))
        assert "Bearer" in server.request("GET", "/v2/").headers.get("WWW-Authenticate", "")
        ok(moord.docker("logout", server.host))
        for tag in ("v1", "v2"):
            ok(moord.docker("rmi", f"{server.host}/team/bb:{tag}"))
        store_clean(moord)
    finally:
        stop_server(server)


# --- TLS and certs.d ----------------------------------------------------------------------


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def test_tls_client_certs(work: str, layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    pki = os.path.join(work, "pki")
    os.makedirs(pki)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=ca",
             "-keyout", f"{pki}/ca.key", "-out", f"{pki}/ca.crt")
    for who, ext in (("server", "subjectAltName=IP:127.0.0.1"),
                     ("client", "extendedKeyUsage=clientAuth")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={who}",
                 "-keyout", f"{pki}/{who}.key", "-out", f"{pki}/{who}.csr")
        Path(pki, f"{who}.ext").write_text(ext + "\n")
        _openssl("x509", "-req", "-in", f"{pki}/{who}.csr", "-CA", f"{pki}/ca.crt",
                 "-CAkey", f"{pki}/ca.key", "-CAcreateserial", "-days", "2",
                 "-extfile", f"{pki}/{who}.ext", "-out", f"{pki}/{who}.crt")
    reg = make_registry(os.path.join(work, "tls"), tls=(f"{pki}/server.crt", f"{pki}/server.key"),
                        client_ca=f"{pki}/ca.crt").start()
    certs = os.path.join(work, "certs.d")
    host_dir = os.path.join(certs, reg.host)
    os.makedirs(host_dir)
    Path(host_dir, "ca.crt").write_bytes(Path(pki, "ca.crt").read_bytes())
    Path(host_dir, "client.cert").write_bytes(Path(pki, "client.crt").read_bytes())
    Path(host_dir, "client.key").write_bytes(Path(pki, "client.key").read_bytes())
    base = os.path.join(work, "moord-tls")
    os.makedirs(base)
    monkeypatch.setenv("MOOR_CERTS_D", certs)
    daemon = start_daemon(base)
    try:
        subprocess.run(["skopeo", "copy", "-q", "--dest-cert-dir", host_dir,
                        f"oci:{layout.path}:busybox", f"docker://{reg.host}/bb:tls"],
                       check=True, capture_output=True, timeout=120)
        ok(daemon.docker("pull", f"{reg.host}/bb:tls"))
        ok(daemon.docker("tag", f"{reg.host}/bb:tls", f"{reg.host}/c:1"))
        assert "Mounted from bb" in ok(daemon.docker("push", f"{reg.host}/c:1"))

        async def ping(certs_dir: str) -> int:
            client = Client(RegistryConfig(certs_dir=certs_dir), TokenCache())
            async with client:
                endpoint = Endpoint(reg.url, reg.host, mirror=False, verify=True)
                return (await client.ping(endpoint))[0]

        # Verified against certs.d's CA (not merely insecure): without it, refused.
        assert asyncio.run(ping(certs)) == 200
        with pytest.raises(Exception, match="certificate verify failed"):
            asyncio.run(ping(os.path.join(work, "nowhere")))
    finally:
        stop_daemon(daemon)
        reg.stop()
    # Without the client certificate the registry refuses the handshake.
    monkeypatch.setenv("MOOR_CERTS_D", os.path.join(work, "nowhere"))
    reg.start()
    base = os.path.join(work, "moord-notls")
    os.makedirs(base)
    daemon = start_daemon(base)
    try:
        assert err(daemon.docker("pull", f"{reg.host}/bb:tls"))
    finally:
        stop_daemon(daemon)
        reg.stop()


# --- mirrors ------------------------------------------------------------------------------


def test_mirror_then_upstream(work: str, layout: Layout) -> None:
    upstream = make_registry(os.path.join(work, "upstream")).start()
    mirror = make_registry(os.path.join(work, "mirror"), proxy_remote=upstream.url).start()
    base = os.path.join(work, "moord-mirror")
    os.makedirs(base)
    daemon = start_daemon(base, "--registry-mirror", mirror.url)
    name = f"{upstream.host}/mirrored:busybox"
    try:
        upstream.seed(layout.path, "busybox", "mirrored")
        ok(daemon.docker("pull", name))
        assert os.path.isdir(os.path.join(mirror.storage, "docker/registry/v2/blobs"))
        ok(daemon.docker("rmi", name))
        upstream.stop()  # the mirror's cache alone serves the pull
        ok(daemon.docker("pull", name))
        ok(daemon.docker("rmi", name))
        upstream.start()
        mirror.stop()  # the mirror is down: straight to the registry
        ok(daemon.docker("pull", name))
        store_clean(daemon)
    finally:
        stop_daemon(daemon)
        mirror.stop()
        upstream.stop()


# --- faults -------------------------------------------------------------------------------


def _unique_image(work: str, name: str, size: int = 4096) -> tuple[str, dict]:
    lay = Layout(os.path.join(work, f"layout-{name}"))
    descriptor = lay.image(Image([(layer_tar([Entry("blob", os.urandom(size))]), "gzip")]))
    lay.tag("v1", descriptor)
    return lay.path, descriptor


def test_tampered_and_missing_blobs(work: str, moord: Daemon, registry: Registry) -> None:
    path, _ = _unique_image(work, "tamper")
    registry.seed(path, "v1", "tamper")
    layer = registry.manifest("tamper", "v1")["layers"][0]["digest"]
    blob = registry.blob_path(layer)
    data = bytearray(Path(blob).read_bytes())
    data[len(data) // 2] ^= 0xFF
    Path(blob).write_bytes(bytes(data))
    out = err(moord.docker("pull", f"{registry.host}/tamper:v1"))
    assert f"filesystem layer verification failed for digest {layer}" in out
    assert err(moord.docker("image", "inspect", f"{registry.host}/tamper:v1"))
    store_clean(moord)

    path, _ = _unique_image(work, "missing")
    registry.seed(path, "v1", "missing")
    layer = registry.manifest("missing", "v1")["layers"][0]["digest"]
    os.unlink(registry.blob_path(layer))
    assert "blob unknown" in err(moord.docker("pull", f"{registry.host}/missing:v1"))
    store_clean(moord)


class CuttingProxy:
    """Forwards to the registry; cuts the first response of each big blob halfway."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.cut: set[str] = set()
        self.ranges: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("accept", "range")}
        if "Range" in headers:
            self.ranges.append(headers["Range"])
        async with aiohttp.ClientSession(auto_decompress=False) as session, \
                session.request(request.method, self.upstream + request.path_qs,
                                headers=headers, allow_redirects=False) as upstream:
            body = await upstream.read()
            out = web.StreamResponse(status=upstream.status, headers={
                k: v for k, v in upstream.headers.items()
                if k.lower() not in ("transfer-encoding", "connection", "content-encoding")})
            await out.prepare(request)
            blob = "/blobs/" in request.path and len(body) > 100_000
            if blob and request.path not in self.cut and "Range" not in headers:
                self.cut.add(request.path)
                await out.write(body[: len(body) // 2])
                assert request.transport is not None
                request.transport.close()
                return out
            await out.write(body)
            await out.write_eof()
            return out

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def test_interrupted_download_resumes(work: str, moord: Daemon, registry: Registry) -> None:
    path, _ = _unique_image(work, "cut", size=2 << 20)
    registry.seed(path, "v1", "cut")
    with CuttingProxy(registry.url) as proxy:
        name = f"127.0.0.1:{proxy.port}/cut:v1"
        ok(moord.docker("pull", name))
        assert proxy.cut and proxy.ranges and proxy.ranges[0].startswith("bytes=")
        ok(moord.docker("rmi", name))
    store_clean(moord)


def test_full_disk(work: str, registry: Registry) -> None:
    path, _ = _unique_image(work, "huge", size=60 << 20)
    registry.seed(path, "v1", "huge")
    base = os.path.join(work, "moord-full")
    os.makedirs(os.path.join(base, "data"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=50m", "tmpfs",
                    os.path.join(base, "data")], check=True)
    try:
        daemon = start_daemon(base)
        try:
            out = err(daemon.docker("pull", f"{registry.host}/huge:v1"))
            assert "failed to register layer" in out and "no space left on device" in out.lower()
            store_clean(daemon)
        finally:
            stop_daemon(daemon)
    finally:
        subprocess.run(["umount", os.path.join(base, "data")], check=True)
