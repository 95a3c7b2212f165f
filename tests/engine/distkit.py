"""Registries and images for the registry-client tests: the CNCF distribution registry
on 127.0.0.1 (plain, htpasswd, TLS, pull-through), images written as OCI layouts
and copied into it with skopeo."""

from __future__ import annotations

import datetime
import gzip
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import tarfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

DISTRIBUTION = "/usr/bin/docker-registry"
SKOPEO = "/usr/bin/skopeo"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Registry:
    base: str
    port: int
    config: str
    log_path: str
    tls: bool = False
    process: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def storage(self) -> str:
        return os.path.join(self.base, "storage")

    def start(self) -> Registry:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([DISTRIBUTION, "serve", self.config], stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            if self.process.poll() is not None:
                raise RuntimeError("registry exited:\n" + Path(self.log_path).read_text())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("registry did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def blob_path(self, digest: str) -> str:
        hex_ = digest.removeprefix("sha256:")
        return os.path.join(self.storage, "docker/registry/v2/blobs/sha256", hex_[:2], hex_,
                            "data")

    def seed(self, layout: str, tag: str, repo: str, *extra: str) -> None:
        """skopeo copy oci:<layout>:<tag> to <repo>:<tag> here."""
        subprocess.run([SKOPEO, "copy", "-q", "--dest-tls-verify=false", *extra,
                        f"oci:{layout}:{tag}", f"docker://{self.host}/{repo}:{tag}"],
                       check=True, capture_output=True, timeout=120)

    def manifest(self, repo: str, ref: str) -> dict:
        request = urllib.request.Request(f"{self.url}/v2/{repo}/manifests/{ref}", headers={
            "Accept": f"{OCI_MANIFEST}, {OCI_INDEX}, "
                      "application/vnd.docker.distribution.manifest.v2+json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read())


def make_registry(base: str, *, htpasswd: str | None = None, tls: tuple[str, str] | None = None,
                  client_ca: str | None = None, proxy_remote: str | None = None) -> Registry:
    os.makedirs(base, exist_ok=True)
    port = free_port()
    lines = ["version: 0.1", "log:", "  level: error", "  accesslog:", "    disabled: true",
             "storage:", "  filesystem:", f"    rootdirectory: {base}/storage",
             "  delete:", "    enabled: true", "http:", f"  addr: 127.0.0.1:{port}"]
    if tls:
        lines += ["  tls:", f"    certificate: {tls[0]}", f"    key: {tls[1]}"]
        if client_ca:
            lines += ["    clientcas:", f"      - {client_ca}"]
    if htpasswd:
        lines += ["auth:", "  htpasswd:", "    realm: test-realm", f"    path: {htpasswd}"]
    if proxy_remote:
        lines += ["proxy:", f"  remoteurl: {proxy_remote}"]
    config = os.path.join(base, "config.yml")
    Path(config).write_text("\n".join(lines) + "\n")
    return Registry(base, port, config, os.path.join(base, "registry.log"), tls=tls is not None)


# --- images -------------------------------------------------------------------------------


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
    return gzip.compress(tar, compresslevel=1, mtime=0), OCI_LAYER_GZIP


@dataclass
class Image:
    layers: list[tuple[bytes, str]]  # (tar, "gzip" | "zstd")
    architecture: str = "amd64"
    cmd: list[str] = field(default_factory=lambda: ["sh"])


class Layout:
    """An OCI image layout (image-spec image-layout.md) written by hand."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
        Path(path, "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        self.index: list[dict] = []

    def blob(self, data: bytes) -> str:
        digest = sha256(data)
        Path(self.path, "blobs", "sha256", digest[7:]).write_bytes(data)
        return digest

    def image(self, image: Image) -> dict:
        """Write the image's blobs; returns its manifest descriptor (with platform)."""
        descriptors, diff_ids = [], []
        for tar, kind in image.layers:
            blob, media_type = compress(tar, kind)
            descriptors.append({"mediaType": media_type, "digest": self.blob(blob),
                                "size": len(blob)})
            diff_ids.append(sha256(tar))
        created = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC).isoformat()
        config = json.dumps({
            "architecture": image.architecture, "os": "linux", "created": created,
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
                "platform": {"architecture": image.architecture, "os": "linux"}}

    def tag(self, tag: str, descriptor: dict) -> None:
        self.index.append({**descriptor, "annotations": {
            "org.opencontainers.image.ref.name": tag}})
        self._write_index()

    def tag_index(self, tag: str, manifests: list[dict]) -> None:
        data = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                           "manifests": manifests}).encode()
        self.tag(tag, {"mediaType": OCI_INDEX, "digest": self.blob(data), "size": len(data)})

    def _write_index(self) -> None:
        Path(self.path, "index.json").write_text(json.dumps(
            {"schemaVersion": 2, "manifests": self.index}))
