"""Registries under test: ours and the CNCF distribution registry, on 127.0.0.1, plus helpers.

Every server is a child process stopped by its pid; HTTP goes through http.client
so paths are sent exactly as written (no client-side ``..`` folding).
"""

from __future__ import annotations

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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DISTRIBUTION = "/usr/bin/docker-registry"
SKOPEO = "/usr/bin/skopeo"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    process: subprocess.Popen[bytes]
    log_path: str
    tls_ca: str | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls_ca else 'http'}://{self.host}"

    def log(self) -> str:
        return Path(self.log_path).read_text(errors="replace")

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


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + 20
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.kind} registry exited:\n{server.log()}")
        try:
            server.request("GET", "/v2/")
            return
        except OSError:
            if time.monotonic() > deadline:
                stop_server(server)
                raise RuntimeError(f"{server.kind} registry did not start:\n{server.log()}") \
                    from None
            time.sleep(0.05)


def start_moor(base: str, *args: str, tls_ca: str | None = None) -> Server:
    """``python -m moorage.registry serve`` on a free port with DIR=base/storage."""
    os.makedirs(base, exist_ok=True)
    port = free_port()
    log_path = os.path.join(base, "moor-registry.log")
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moorage.registry", "serve", "--listen", f"127.0.0.1:{port}",
             "--storage", os.path.join(base, "storage"), *args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = Server("moor", port, process, log_path, tls_ca)
    _wait_ready(server)
    return server


def start_distribution(base: str, *, htpasswd: str | None = None,
                       proxy_remote: str | None = None, access_log: bool = False) -> Server:
    """The distribution registry with deletes enabled (to compare DELETE behaviour)."""
    os.makedirs(base, exist_ok=True)
    port = free_port()
    lines = ["version: 0.1", "log:", "  level: error", "  accesslog:",
             f"    disabled: {'false' if access_log else 'true'}",
             # The in-memory descriptor cache is on in Debian's default config.yml too.
             "storage:", "  cache:", "    blobdescriptor: inmemory", "  filesystem:",
             f"    rootdirectory: {base}/storage", "  delete:",
             "    enabled: true", "http:", f"  addr: 127.0.0.1:{port}"]
    if htpasswd:
        lines += ["auth:", "  htpasswd:", "    realm: test", f"    path: {htpasswd}"]
    if proxy_remote:
        lines += ["proxy:", f"  remoteurl: {proxy_remote}"]
    config = os.path.join(base, "config.yml")
    Path(config).write_text("\n".join(lines) + "\n")
    log_path = os.path.join(base, "distribution.log")
    with open(log_path, "ab") as log:
        process = subprocess.Popen([DISTRIBUTION, "serve", config], stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = Server("distribution", port, process, log_path)
    _wait_ready(server)
    return server


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


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


def _tar_gz(files: dict[str, bytes]) -> tuple[bytes, str]:
    """A gzip layer and its diff ID (digest of the uncompressed tar)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), 0o644, 0
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0), sha256(raw.getvalue())


def write_oci_layout(dest: str, platforms: list[tuple[str, str]], tag: str = "latest") -> str:
    """An OCI image layout at ``dest``: one image, or an index when given several platforms.

    Returns the digest of the top-level manifest or index.
    """
    blobs = Path(dest) / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> None:
        (blobs / sha256(data).split(":")[1]).write_bytes(data)

    manifests = []
    for os_name, arch in platforms:
        layer, diff_id = _tar_gz({f"hello-{arch}": os.urandom(2048),
                                  "etc/motd": f"{os_name}/{arch}\n".encode()})
        config = json.dumps({"architecture": arch, "os": os_name, "config": {},
                             "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
        manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                               "config": descriptor(OCI_CONFIG, config),
                               "layers": [descriptor(OCI_LAYER, layer)]}).encode()
        for data in (layer, config, manifest):
            put(data)
        manifests.append(descriptor(OCI_MANIFEST, manifest,
                                    platform={"os": os_name, "architecture": arch}))
    annotations = {"org.opencontainers.image.ref.name": tag}
    if len(manifests) == 1:
        top = {**manifests[0], "annotations": annotations}
        top.pop("platform")
    else:
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                            "manifests": manifests}).encode()
        put(index)
        top = descriptor(OCI_INDEX, index, annotations=annotations)
    Path(dest, "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))
    Path(dest, "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    return str(top["digest"])


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


def make_tls(folder: str) -> tuple[str, str, str]:
    """A test CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key)."""
    ca_key, ca, key, csr, cert = (os.path.join(folder, n) for n in
                                  ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt"))
    ext = os.path.join(folder, "san.ext")
    Path(ext).write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
            "-days", "2", "-subj", "/CN=moorage test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
            "-subj", "/CN=127.0.0.1")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-out", cert, "-days", "2", "-extfile", ext)
    return ca, cert, key
