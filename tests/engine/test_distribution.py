"""The engine's registry client against the real CNCF distribution registry, driven by
the real docker CLI: pull, push, login, TLS with certs.d, mirrors, and faults."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import re
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from enginekit import MOORD, Daemon, start_daemon, stop_daemon, store_clean
from peers import dockerd_running
from registrykit import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_MANIFEST,
    AppThread,
    Entry,
    Image,
    Layout,
    Server,
    free_port,
    layer_tar,
    make_tls,
    restart_server,
    rootfs_layer,
    start_distribution,
    start_moor,
    stop_server,
    write_htpasswd,
)

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


def api(daemon: Daemon, method: str, path: str,
        headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("localhost", timeout=120)
    conn.sock = socket.socket(socket.AF_UNIX)
    conn.sock.connect(daemon.socket)
    conn.request(method, path, headers=headers or {})
    response = conn.getresponse()
    return response.status, response.read()


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
def registry(work: str, layout: Layout) -> Iterator[Server]:
    # No descriptor cache: test_tampered_and_missing_blobs deletes a blob behind its back.
    with start_distribution(os.path.join(work, "plain"), descriptor_cache=False) as reg:
        for tag in ("busybox", "multi", "big"):
            reg.seed(layout.path, tag, tag.replace("busybox", "bb"))
        reg.seed(layout.path, "multiarch", "multiarch", "--all")
        yield reg


def test_pull_run_and_repo_digests(moord: Daemon, registry: Server) -> None:
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
    # dockerd shows no layer of an image it has
    assert "Already exists" not in again and f"Image is up to date for {name}" in again
    # By digest too.
    ok(moord.docker("pull", f"{registry.host}/bb@{manifest_digest}"))
    store_clean(moord)


def test_pull_all_tags_as_dockerd(moord: Daemon, registry: Server, layout: Layout) -> None:
    """docker pull --all-tags: each tag in the registry's order, one status at the end; an
    image already whole shows no layer. The same lines from dockerd (layer progress
    aside, whose order the downloads decide)."""
    # (dockerd 20.10 pulls no zstd layer: "multi" is not one of them)
    registry.seed(layout.path, "busybox", "tags")
    registry.seed(layout.path, "multiarch", "tags", "--all")
    name = f"{registry.host}/tags"

    def steps(line: str) -> bool:
        return re.match(r"[0-9a-f]{12}: ", line) is None

    with dockerd_running("dist-all-tags-") as dockerd:
        shown = []
        for daemon in (moord, dockerd):
            # the image under another name too: `images NAME` lists only NAME's digests
            ok(daemon.docker("pull", f"{registry.host}/bb:busybox"))
            first, again = (ok(daemon.docker("pull", "--all-tags", name)) for _ in range(2))
            shown.append(([line for line in first.splitlines() if steps(line)], again))
            tags = ok(daemon.docker("images", "--format", "{{.Tag}}", name)).split()
            assert sorted(tags) == ["busybox", "multiarch"], ok(daemon.docker("images", "-a"))
            daemon.docker("rmi", f"{name}:busybox", f"{name}:multiarch")
    assert shown[0] == shown[1]
    assert shown[0][0][-2:] == [f"Status: Downloaded newer image for {name}", name]
    assert "Already exists" not in shown[0][1]
    store_clean(moord)


def test_pull_whiteouts_opaque_zstd(moord: Daemon, registry: Server) -> None:
    name = f"{registry.host}/multi:multi"
    ok(moord.docker("pull", name))
    out = ok(moord.docker("run", "--rm", name, "sh", "-c",
                          "ls /data; echo -; ls /opq; cat /data/keep"))
    assert out == "keep\n-\nnew\nkeep\n"
    layers = inspect(moord, name)["RootFS"]["Layers"]
    assert len(layers) == 3
    ok(moord.docker("rmi", name))
    store_clean(moord)


def test_pull_platforms(moord: Daemon, registry: Server) -> None:
    name = f"{registry.host}/multiarch:multiarch"
    ok(moord.docker("pull", name))
    assert ok(moord.docker("run", "--rm", name, "cat", "/arch")) == "amd64\n"
    ok(moord.docker("pull", "--platform", "linux/arm64", name))
    assert inspect(moord, name)["Architecture"] == "arm64"
    assert "no matching manifest for linux/s390x" in err(
        moord.docker("pull", "--platform", "linux/s390x", name))
    ok(moord.docker("rmi", name))


def test_push_monolithic_chunked_mount(moord: Daemon, registry: Server) -> None:
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


def test_pull_errors_before_streaming(moord: Daemon, registry: Server) -> None:
    assert "manifest unknown" in err(moord.docker("pull", f"{registry.host}/bb:nope"))
    port = free_port()
    assert "connection refused" in err(moord.docker("pull", f"127.0.0.1:{port}/x:y"))
    # Beyond loopback, the suite's guard (tests/conftest.py) lets a pull reach only its
    # refusing proxy: no name is looked up. (The "no such host" wording: tests/unit.)
    proxy = os.environ["HTTPS_PROXY"].removeprefix("http://")
    assert f'Get "https://no-such-host.invalid/v2/": proxyconnect tcp: dial tcp {proxy}: ' \
        "connect: connection refused" in err(moord.docker("pull", "no-such-host.invalid/x"))
    status, body = api(moord, "POST", "/images/create?fromImage=x@sha256:12")
    assert status == 400 and b"invalid reference format" in body, body


# --- auth -------------------------------------------------------------------------------


def test_login_and_auth_pull_push(work: str, layout: Layout, moord: Daemon) -> None:
    htpasswd = write_htpasswd(os.path.join(work, "htpasswd"), {"alice": "secret"})
    with start_distribution(os.path.join(work, "auth"), htpasswd=htpasswd) as reg:
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


def test_our_registry_bearer_tokens(work: str, layout: Layout, moord: Daemon) -> None:
    """moord against `moor registry serve --htpasswd`, whose 401s carry a Bearer challenge."""
    base = os.path.join(work, "ours")
    os.makedirs(base, exist_ok=True)
    htpasswd = write_htpasswd(os.path.join(base, "htpasswd"), {"bob": "hunter2"})
    with start_moor(base, "--htpasswd", htpasswd) as server:
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


# --- TLS and certs.d ----------------------------------------------------------------------


def test_tls_client_certs(work: str, layout: Layout, monkeypatch: pytest.MonkeyPatch) -> None:
    pki_dir = os.path.join(work, "pki")
    os.makedirs(pki_dir)
    pki = make_tls(pki_dir, client=True)
    with start_distribution(os.path.join(work, "tls"), tls=pki, client_ca=True) as reg:
        certs = os.path.join(work, "certs.d")
        host_dir = os.path.join(certs, reg.host)
        os.makedirs(host_dir)
        Path(host_dir, "ca.crt").write_bytes(Path(pki.ca).read_bytes())
        Path(host_dir, "client.cert").write_bytes(Path(pki.client_cert).read_bytes())
        Path(host_dir, "client.key").write_bytes(Path(pki.client_key).read_bytes())
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
        # Without the client certificate the registry refuses the handshake.
        monkeypatch.setenv("MOOR_CERTS_D", os.path.join(work, "nowhere"))
        base = os.path.join(work, "moord-notls")
        os.makedirs(base)
        daemon = start_daemon(base)
        try:
            assert err(daemon.docker("pull", f"{reg.host}/bb:tls"))
        finally:
            stop_daemon(daemon)


# --- mirrors ------------------------------------------------------------------------------


def test_mirror_then_upstream(work: str, layout: Layout) -> None:
    with start_distribution(os.path.join(work, "upstream")) as upstream, \
            start_distribution(os.path.join(work, "mirror"), proxy_remote=upstream.url) as mirror:
        base = os.path.join(work, "moord-mirror")
        os.makedirs(base)
        daemon = start_daemon(base, "--registry-mirror", mirror.url)
        name = f"{upstream.host}/mirrored:busybox"
        try:
            upstream.seed(layout.path, "busybox", "mirrored")
            ok(daemon.docker("pull", name))
            assert os.path.isdir(os.path.join(mirror.storage, "docker/registry/v2/blobs"))
            ok(daemon.docker("rmi", name))
            stop_server(upstream)  # the mirror's cache alone serves the pull
            ok(daemon.docker("pull", name))
            ok(daemon.docker("rmi", name))
            restart_server(upstream)
            stop_server(mirror)  # the mirror is down: straight to the registry
            ok(daemon.docker("pull", name))
            store_clean(daemon)
        finally:
            stop_daemon(daemon)


def test_mirrors_by_registry(work: str, layout: Layout) -> None:
    """registry.k8s.io and gcr.io each through a mirror of its own (containerd's
    registry.mirrors), the rest through registry-mirrors; neither upstream is reached
    (the run's HTTPS proxy refuses what would go there)."""
    with start_distribution(os.path.join(work, "k8s-mirror")) as k8s, \
            start_distribution(os.path.join(work, "gcr-mirror")) as gcr:
        k8s.seed(layout.path, "busybox", "pause")
        gcr.seed(layout.path, "busybox", "project/tool")
        base = os.path.join(work, "moord-by-registry")
        os.makedirs(base)
        config = os.path.join(base, "daemon.json")
        with open(config, "w") as file:
            json.dump({"registry-mirrors": [gcr.url], "registry-mirrors-by-registry": {
                "registry.k8s.io": [k8s.url], "gcr.io": [gcr.url]}}, file)
        daemon = start_daemon(base, "--config-file", config)
        try:
            ok(daemon.docker("pull", "registry.k8s.io/pause:busybox"))
            ok(daemon.docker("pull", "gcr.io/project/tool:busybox"))
            # Each registry's mirror alone: gcr.io's does not serve registry.k8s.io.
            assert err(daemon.docker("pull", "registry.k8s.io/project/tool:busybox"))
        finally:
            stop_daemon(daemon)
    bad = os.path.join(work, "bad-by-registry.json")
    with open(bad, "w") as file:
        json.dump({"registry-mirrors-by-registry": {"gcr.io": "http://127.0.0.1:1"}}, file)
    refused = subprocess.run([MOORD, "--config-file", bad, "--data-root",
                              os.path.join(work, "bad-root")], capture_output=True, text=True,
                             timeout=30)
    assert refused.returncode != 0 and "registry-mirrors-by-registry" in refused.stderr


# --- faults -------------------------------------------------------------------------------


def _unique_image(work: str, name: str, size: int = 4096) -> tuple[Layout, dict]:
    lay = Layout(os.path.join(work, f"layout-{name}"))
    descriptor = lay.image(Image([(layer_tar([Entry("blob", os.urandom(size))]), "gzip")]))
    lay.tag("v1", descriptor)
    return lay, descriptor


def test_tampered_and_missing_blobs(work: str, moord: Daemon, registry: Server) -> None:
    lay, _ = _unique_image(work, "tamper")
    registry.seed(lay.path, "v1", "tamper")
    layer = registry.manifest("tamper", "v1")["layers"][0]["digest"]
    blob = registry.distribution_blob_path(layer)
    data = bytearray(Path(blob).read_bytes())
    data[len(data) // 2] ^= 0xFF
    Path(blob).write_bytes(bytes(data))
    out = err(moord.docker("pull", f"{registry.host}/tamper:v1"))
    assert f"filesystem layer verification failed for digest {layer}" in out
    assert err(moord.docker("image", "inspect", f"{registry.host}/tamper:v1"))
    store_clean(moord)

    lay, _ = _unique_image(work, "missing")
    registry.seed(lay.path, "v1", "missing")
    layer = registry.manifest("missing", "v1")["layers"][0]["digest"]
    os.unlink(registry.distribution_blob_path(layer))
    assert "blob unknown" in err(moord.docker("pull", f"{registry.host}/missing:v1"))
    store_clean(moord)


class CuttingProxy(AppThread):
    """Forwards to the registry; cuts the first response of each big blob halfway."""

    def __init__(self, upstream: str) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        super().__init__(app)
        self.upstream = upstream
        self.cut: set[str] = set()
        self.ranges: list[str] = []

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


def test_interrupted_download_resumes(work: str, moord: Daemon, registry: Server) -> None:
    lay, _ = _unique_image(work, "cut", size=2 << 20)
    registry.seed(lay.path, "v1", "cut")
    with CuttingProxy(registry.url) as proxy:
        name = f"127.0.0.1:{proxy.port}/cut:v1"
        ok(moord.docker("pull", name))
        assert proxy.cut and proxy.ranges and proxy.ranges[0].startswith("bytes=")
        ok(moord.docker("rmi", name))
    store_clean(moord)


def test_full_disk(work: str, registry: Server) -> None:
    lay, _ = _unique_image(work, "huge", size=60 << 20)
    registry.seed(lay.path, "v1", "huge")
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


# --- what a real registry cannot be made to do ------------------------------------------


class BlobStorage(AppThread):
    """Blob storage on another port (an S3 or CDN URL): records the headers it gets."""

    def __init__(self, layout: Layout) -> None:
        app = web.Application()
        app.router.add_get("/blobs/{digest}", self._get)
        super().__init__(app)
        self.layout = layout
        self.headers: list[dict[str, str]] = []

    async def _get(self, request: web.Request) -> web.Response:
        self.headers.append(dict(request.headers))
        return web.Response(body=self.layout.read(request.match_info["digest"]))


class FakeRegistry(AppThread):
    """Bearer tokens from its own realm (an identity token by OAuth2's refresh-token
    grant, anonymous otherwise), every blob redirected to ``storage``, manifests served
    with the media type given, and a token revoked on demand."""

    def __init__(self, storage: BlobStorage, manifests: dict[str, tuple[str, bytes]]) -> None:
        app = web.Application()
        app.router.add_route("*", "/token", self._token)
        app.router.add_get("/v2/", self._ping)
        app.router.add_get("/v2/{name:.+}/manifests/{reference}", self._manifest)
        app.router.add_get("/v2/{name:.+}/blobs/{digest}", self._blob)
        super().__init__(app)
        self.storage = storage
        self.manifests = manifests
        self.grants: list[dict[str, str]] = []
        self.tokens: set[str] = set()
        self.revoke_once = False  # refuse the next valid token, as after its revocation

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _token(self, request: web.Request) -> web.Response:
        grant = dict(await request.post()) if request.method == "POST" else dict(request.query)
        self.grants.append({k: str(v) for k, v in grant.items()})
        if request.method == "POST" and grant.get("refresh_token") != "idt-secret":
            return web.json_response({"error": "invalid_grant"}, status=401)
        token = f"tok-{len(self.grants)}"
        self.tokens.add(token)
        return web.json_response({"access_token": token, "expires_in": 300})

    def _refuse(self, request: web.Request) -> web.Response | None:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token in self.tokens and not self.revoke_once:
            return None
        if token in self.tokens:
            self.revoke_once = False
            self.tokens.discard(token)
        name = request.match_info.get("name", "")
        return web.json_response(
            {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
            status=401, headers={"WWW-Authenticate": (
                f'Bearer realm="{self.url}/token",service="fake",'
                f'scope="repository:{name}:pull"')})

    async def _ping(self, request: web.Request) -> web.Response:
        return self._refuse(request) or web.json_response({})

    async def _manifest(self, request: web.Request) -> web.Response:
        if (refused := self._refuse(request)) is not None:
            return refused
        media_type, body = self.manifests[request.match_info["reference"]]
        return web.Response(body=body, headers={"Content-Type": media_type})

    async def _blob(self, request: web.Request) -> web.Response:
        if (refused := self._refuse(request)) is not None:
            return refused
        location = f"{self.storage.url}/blobs/{request.match_info['digest']}"
        return web.Response(status=307, headers={"Location": location})


def _auth_header(config: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(config).encode()).decode()


def test_redirected_blobs_identity_token_and_revoked_token(work: str, moord: Daemon) -> None:
    lay, descriptor = _unique_image(work, "redirect")
    manifest = lay.read(descriptor["digest"])
    with BlobStorage(lay) as storage, \
            FakeRegistry(storage, {"v1": (OCI_MANIFEST, manifest)}) as fake:
        fake.revoke_once = True
        name = f"{fake.host}/team/app:v1"
        status, body = api(moord, "POST", f"/images/create?fromImage={fake.host}/team/app&tag=v1",
                           {"X-Registry-Auth": _auth_header({"identitytoken": "idt-secret"})})
        assert status == 200 and b"errorDetail" not in body, body
        assert inspect(moord, name)["RepoDigests"] == [
            f"{fake.host}/team/app@{descriptor['digest']}"]
        # The identity token went to the realm by the refresh-token grant, twice: the
        # registry refused the first token once and the engine fetched another.
        assert [g["grant_type"] for g in fake.grants] == ["refresh_token"] * 2
        assert fake.grants[0]["scope"] == "repository:team/app:pull"
        # Config and layer came from blob storage, without the registry's credentials.
        assert len(storage.headers) == 2
        assert not any("Authorization" in h for h in storage.headers)
        ok(moord.docker("rmi", name))
    store_clean(moord)


SCHEMA1 = json.dumps({"schemaVersion": 1, "name": "legacy", "tag": "old",
                      "architecture": "amd64", "fsLayers": [], "history": [],
                      "signatures": []}, indent=3).encode()


def test_schema1_refused(work: str, moord: Daemon) -> None:
    lay, _ = _unique_image(work, "schema1")
    with BlobStorage(lay) as storage, FakeRegistry(storage, {
            "old": ("application/vnd.docker.distribution.manifest.v1+prettyjws", SCHEMA1),
            "untyped": ("application/json", SCHEMA1)}) as fake:
        for tag in ("old", "untyped"):
            # moby distribution/errors.go DeprecatedSchema1ImageError (Docker 28).
            assert ("Docker Image Format v1 and Docker Image manifest version 2, schema 1 "
                    f"support has been removed. Suggest the author of {fake.host}/legacy:{tag} "
                    "to upgrade the image to the OCI Format or Docker Image manifest v2, "
                    "schema 2. More information at "
                    "https://docs.docker.com/go/deprecated-image-specs/") in \
                err(moord.docker("pull", f"{fake.host}/legacy:{tag}"))
        assert not storage.headers  # refused before any blob
    store_clean(moord)


def test_docker_schema2_and_distribution_inspect(moord: Daemon, registry: Server,
                                                 layout: Layout) -> None:
    """Docker's media types (manifest list and schema 2, as skopeo converts them) pull like
    OCI's; GET /distribution/{name}/json describes a reference without pulling it."""
    registry.seed(layout.path, "multiarch", "docker2", "--all", "--format", "v2s2")
    index = registry.manifest("docker2", "multiarch")
    assert index["mediaType"] == DOCKER_LIST
    name = f"{registry.host}/docker2:multiarch"
    status, body = api(moord, "GET", f"/distribution/{name}/json")
    assert status == 200, body
    described = json.loads(body)
    assert described["Descriptor"]["mediaType"] == DOCKER_LIST
    assert sorted(p["architecture"] for p in described["Platforms"]) == ["amd64", "arm64"]
    ok(moord.docker("pull", name))
    assert ok(moord.docker("run", "--rm", name, "cat", "/arch")) == "amd64\n"
    platform = index["manifests"][0]["digest"]
    assert registry.manifest("docker2", platform)["mediaType"] == DOCKER_MANIFEST
    # The same image in OCI's format under another name: one image, a manifest for each;
    # the one only the removed name's digest named goes with it.
    oci = f"{registry.host}/multiarch:multiarch"
    ok(moord.docker("pull", oci))
    ok(moord.docker("rmi", name))
    store_clean(moord)
    ok(moord.docker("rmi", oci))
    store_clean(moord)
