"""Registries under test and what they serve, shared by tests/registry, the engine's
registry-client tests (tests/engine/test_distribution.py) and the benchmarks.

Servers: ours and the CNCF distribution registry on 127.0.0.1 (plain, htpasswd,
TLS with an optional client CA, pull-through), each a child process stopped by
its pid and restartable on the same port and storage; HTTP goes through
http.client so paths are sent exactly as written (no client-side ``..``
folding). Images: OCI layouts written by hand (whiteouts, zstd, several
platforms), copied into a registry with skopeo. ``AppThread`` runs a small
aiohttp application in a thread, for fakes that a real registry cannot play.
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import hashlib
import http.client
import io
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

from aiohttp import web
from peers import in_netns

DISTRIBUTION = "/usr/bin/docker-registry"
SKOPEO = "/usr/bin/skopeo"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def error_codes(self) -> list[str]:
        return [e["code"] for e in self.json()["errors"]]


@dataclass
class Server:
    kind: str            # "moor" or "distribution"
    port: int
    base: str            # storage/ and the log live here
    argv: list[str]      # what restart_server runs again
    tls_ca: str | None = None
    process: subprocess.Popen[bytes] | None = None
    netns: str = ""      # serving inside this network namespace (a peer dockerd's), not the host's

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls_ca else 'http'}://{self.host}"

    @property
    def storage(self) -> str:
        return os.path.join(self.base, "storage")

    @property
    def log_path(self) -> str:
        return os.path.join(self.base, f"{self.kind}-registry.log")

    def log(self) -> str:
        return Path(self.log_path).read_text(errors="replace")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        stop_server(self)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Response:
        if self.tls_ca:
            context = ssl.create_default_context(cafile=self.tls_ca)
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                "127.0.0.1", self.port, context=context, timeout=60)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return Response(response.status, response.headers, response.read())
        finally:
            conn.close()

    def manifest(self, repo: str, ref: str) -> dict[str, Any]:
        r = self.request("GET", f"/v2/{repo}/manifests/{ref}", headers={
            "Accept": f"{OCI_MANIFEST}, {OCI_INDEX}, {DOCKER_MANIFEST}, {DOCKER_LIST}"})
        assert r.status == 200, (r.status, r.body)
        return dict(r.json())

    def seed(self, layout: str, tag: str, repo: str, *extra: str) -> None:
        """skopeo copy oci:<layout>:<tag> to <repo>:<tag> here."""
        subprocess.run([SKOPEO, "copy", "-q", "--dest-tls-verify=false", *extra,
                        f"oci:{layout}:{tag}", f"docker://{self.host}/{repo}:{tag}"],
                       check=True, capture_output=True, timeout=120)

    def distribution_blob_path(self, digest: str) -> str:
        """Where the distribution registry keeps a blob's bytes (to tamper with them)."""
        hex_ = digest.removeprefix("sha256:")
        return os.path.join(self.storage, "docker/registry/v2/blobs/sha256", hex_[:2], hex_,
                            "data")


def restart_server(server: Server) -> Server:
    """Run the server's command line (again): same port, same storage."""
    with open(server.log_path, "ab") as log:
        server.process = subprocess.Popen(server.argv, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.kind} registry exited:\n{server.log()}")
        if _listening(server):
            return server
        if time.monotonic() > deadline:
            stop_server(server)
            raise RuntimeError(f"{server.kind} registry did not start:\n{server.log()}")
        time.sleep(0.05)


def _listening(server: Server) -> bool:
    """A connection, not a request: a registry demanding client certificates refuses
    requests from here, and a listening one is serving."""
    if server.netns:
        return subprocess.run(in_netns(server.netns, sys.executable, "-c",
                                       "import socket; socket.create_connection(('127.0.0.1', "
                                       f"{server.port}), timeout=1)"),
                              capture_output=True).returncode == 0
    try:
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
        return True
    except OSError:
        return False


def start_moor(base: str, *args: str, tls_ca: str | None = None, netns: str = "") -> Server:
    """``python -m moorage.registry serve`` on a free port with DIR=base/storage (in the
    network namespace bound at `netns`, for a peer dockerd that lives there)."""
    os.makedirs(base, exist_ok=True)
    port = free_port()
    argv = in_netns(netns, sys.executable, "-m", "moorage.registry", "serve", "--listen",
                    f"127.0.0.1:{port}", "--storage", os.path.join(base, "storage"), *args)
    return restart_server(Server("moor", port, base, argv, tls_ca, netns=netns))


def start_distribution(base: str, *, htpasswd: str | None = None,
                       proxy_remote: str | None = None, access_log: bool = False,
                       tls: Pki | None = None, client_ca: bool = False,
                       descriptor_cache: bool = True) -> Server:
    """The distribution registry with deletes enabled (to compare DELETE behaviour).

    ``tls`` serves its server certificate; ``client_ca`` then also demands a client
    certificate signed by its CA. Without ``descriptor_cache`` a blob deleted from
    the storage behind the registry's back is reported unknown, not half-served."""
    os.makedirs(base, exist_ok=True)
    port = free_port()
    lines = ["version: 0.1", "log:", "  level: error", "  accesslog:",
             f"    disabled: {'false' if access_log else 'true'}", "storage:"]
    if descriptor_cache:
        # The in-memory descriptor cache is on in Debian's default config.yml too.
        lines += ["  cache:", "    blobdescriptor: inmemory"]
    lines += ["  filesystem:", f"    rootdirectory: {base}/storage", "  delete:",
              "    enabled: true", "http:", f"  addr: 127.0.0.1:{port}"]
    if tls:
        lines += ["  tls:", f"    certificate: {tls.cert}", f"    key: {tls.key}"]
        if client_ca:
            lines += ["    clientcas:", f"      - {tls.ca}"]
    if htpasswd:
        lines += ["auth:", "  htpasswd:", "    realm: test", f"    path: {htpasswd}"]
    if proxy_remote:
        lines += ["proxy:", f"  remoteurl: {proxy_remote}"]
    config = os.path.join(base, "config.yml")
    Path(config).write_text("\n".join(lines) + "\n")
    return restart_server(Server("distribution", port, base, [DISTRIBUTION, "serve", config],
                                 tls.ca if tls else None))


def stop_server(server: Server) -> None:
    if server.process is not None and server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


class AppThread:
    """An aiohttp application on 127.0.0.1:<free port>, served from its own thread and
    event loop so that blocking tests (and subprocesses) can talk to it."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app)
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the test server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


# ---------------------------------------------------------------------- pushing by hand


def push_blob(server: Server, repo: str, data: bytes) -> str:
    """POST then PUT (distribution 2.8 lacks the single-POST form that ours also has)."""
    digest = sha256(data)
    start = server.request("POST", f"/v2/{repo}/blobs/uploads/")
    assert start.status == 202, (start.status, start.body)
    parts = urlsplit(start.headers["Location"])
    query = f"{parts.query}&digest={digest}" if parts.query else f"digest={digest}"
    r = server.request("PUT", f"{parts.path}?{query}", data,
                       {"Content-Type": "application/octet-stream"})
    assert r.status == 201, (r.status, r.body)
    return digest


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


def image_manifest(server: Server, repo: str, *, layers: int = 1, salt: str = "",
                   media_type: str = OCI_MANIFEST, **extra: Any) -> bytes:
    """Push a config and ``layers`` small layers; return the manifest bytes (not pushed)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "salt": salt}).encode()
    push_blob(server, repo, config)
    blobs = [f"layer {i} {salt} {os.urandom(8).hex()}".encode() for i in range(layers)]
    for blob in blobs:
        push_blob(server, repo, blob)
    layer_type = OCI_LAYER if media_type == OCI_MANIFEST else \
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    config_type = OCI_CONFIG if media_type == OCI_MANIFEST else \
        "application/vnd.docker.container.image.v1+json"
    doc = {"schemaVersion": 2, "mediaType": media_type,
           "config": descriptor(config_type, config),
           "layers": [descriptor(layer_type, b) for b in blobs], **extra}
    return json.dumps(doc).encode()


def put_manifest(server: Server, repo: str, ref: str, data: bytes,
                 media_type: str = OCI_MANIFEST) -> Response:
    return server.request("PUT", f"/v2/{repo}/manifests/{ref}", data,
                          {"Content-Type": media_type})


# ---------------------------------------------------------------------- OCI layouts


@dataclass
class Entry:
    name: str
    data: bytes | None = None  # None: a directory
    mode: int = 0o644
    link: str = ""  # a symlink target


def layer_tar(entries: list[Entry]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.mtime = 1700000000
            if entry.link:
                info.type, info.linkname = tarfile.SYMTYPE, entry.link
                tar.addfile(info)
            elif entry.data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(entry.data), entry.mode
                tar.addfile(info, io.BytesIO(entry.data))
    return out.getvalue()


def rootfs_layer(root: str) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(os.listdir(root)):
            tar.add(os.path.join(root, name), arcname=name)
    return out.getvalue()


def compress(tar: bytes, kind: str) -> tuple[bytes, str]:
    if kind == "zstd":
        from backports import zstd

        return zstd.compress(tar), OCI_LAYER_ZSTD
    return gzip.compress(tar, compresslevel=1, mtime=0), OCI_LAYER


@dataclass
class Image:
    layers: list[tuple[bytes, str]]  # (tar, "gzip" | "zstd")
    architecture: str = "amd64"
    os: str = "linux"
    cmd: list[str] = field(default_factory=lambda: ["sh"])


class Layout:
    """An OCI image layout (image-spec image-layout.md) written by hand."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
        Path(path, "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        self.index: list[dict[str, Any]] = []

    def blob(self, data: bytes) -> str:
        digest = sha256(data)
        Path(self.path, "blobs", "sha256", digest[7:]).write_bytes(data)
        return digest

    def image(self, image: Image) -> dict[str, Any]:
        """Write the image's blobs; returns its manifest descriptor (with platform)."""
        descriptors, diff_ids = [], []
        for tar, kind in image.layers:
            blob, media_type = compress(tar, kind)
            descriptors.append({"mediaType": media_type, "digest": self.blob(blob),
                                "size": len(blob)})
            diff_ids.append(sha256(tar))
        created = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC).isoformat()
        config = json.dumps({
            "architecture": image.architecture, "os": image.os, "created": created,
            "config": {"Cmd": image.cmd, "Env": ["PATH=/usr/bin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": created, "created_by": f"layer {i}"}
                        for i in range(len(diff_ids))]}).encode()
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": self.blob(config),
                       "size": len(config)},
            "layers": descriptors}).encode()
        return {"mediaType": OCI_MANIFEST, "digest": self.blob(manifest),
                "size": len(manifest),
                "platform": {"architecture": image.architecture, "os": image.os}}

    def tag(self, tag: str, descriptor: dict[str, Any]) -> None:
        self.index.append({**descriptor, "annotations": {
            "org.opencontainers.image.ref.name": tag}})
        Path(self.path, "index.json").write_text(json.dumps(
            {"schemaVersion": 2, "manifests": self.index}))

    def tag_index(self, tag: str, manifests: list[dict[str, Any]]) -> None:
        data = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                           "manifests": manifests}).encode()
        self.tag(tag, {"mediaType": OCI_INDEX, "digest": self.blob(data), "size": len(data)})

    def read(self, digest: str) -> bytes:
        return Path(self.path, "blobs", "sha256", digest.removeprefix("sha256:")).read_bytes()


def write_oci_layout(dest: str, platforms: list[tuple[str, str]], tag: str = "latest") -> str:
    """An OCI image layout at ``dest``: one single-layer image per platform (distinct
    random content), under an index when there are several. Returns the digest of
    the top-level manifest or index."""
    layout = Layout(dest)
    manifests = [layout.image(Image([(layer_tar([
        Entry(f"hello-{arch}", os.urandom(2048)), Entry("etc"),
        Entry("etc/motd", f"{os_name}/{arch}\n".encode())]), "gzip")],
        architecture=arch, os=os_name)) for os_name, arch in platforms]
    if len(manifests) == 1:
        manifests[0].pop("platform")
        layout.tag(tag, manifests[0])
    else:
        layout.tag_index(tag, manifests)
    return str(layout.index[-1]["digest"])


def skopeo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SKOPEO, *args], capture_output=True, text=True, timeout=timeout)


# ---------------------------------------------------------------------- auth and TLS material


def write_htpasswd(path: str, users: dict[str, str]) -> str:
    """Entries as ``htpasswd -B`` writes them ($2y$ bcrypt)."""
    import bcrypt

    lines = [f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=5)).decode()}"
             .replace(":$2b$", ":$2y$") for user, pw in users.items()]
    Path(path).write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True)
class Pki:
    ca: str
    cert: str  # the server's, for 127.0.0.1 and localhost
    key: str
    client_cert: str = ""  # with client=True: clientAuth, signed by the same CA
    client_key: str = ""


def make_tls(folder: str, *, client: bool = False) -> Pki:
    """A test CA, a server certificate signed by it and optionally a client one."""
    def path(name: str) -> str:
        return os.path.join(folder, name)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", path("ca.key"),
            "-out", path("ca.crt"), "-days", "2", "-subj", "/CN=moorage test CA")
    signed = {"server": "subjectAltName=IP:127.0.0.1,DNS:localhost"}
    if client:
        signed["client"] = "extendedKeyUsage=clientAuth"
    for who, extension in signed.items():
        Path(path(f"{who}.ext")).write_text(extension + "\n")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", path(f"{who}.key"),
                "-out", path(f"{who}.csr"), "-subj", f"/CN={who}")
        openssl("x509", "-req", "-in", path(f"{who}.csr"), "-CA", path("ca.crt"),
                "-CAkey", path("ca.key"), "-CAcreateserial", "-out", path(f"{who}.crt"),
                "-days", "2", "-extfile", path(f"{who}.ext"))
    return Pki(path("ca.crt"), path("server.crt"), path("server.key"),
               path("client.crt") if client else "", path("client.key") if client else "")
