"""Realistic builds: a Debian bookworm base (mmdebstrap, cached by debiankit) and on it a
Python web app and an nginx image whose RUN steps apt-get install from a local apt
repository served on loopback (`--network host` builds: nothing reaches the internet).
moord and dockerd's classic builder build the same Dockerfiles; the images' configs and
filesystems must match, and the built servers must answer."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from buildcheck import CONFIG_FIELDS, classic_builder
from comparekit import Pair, daemon_pair
from debiankit import bookworm, serve_repo
from enginekit import Daemon
from peers import DOCKER_CLI, Dockerd, dockerd_available

# On a new machine the first test makes the Debian base (mmdebstrap) in its setup, which
# pytest-timeout counts against the test.
pytestmark = [pytest.mark.skipif(not dockerd_available(), reason="needs dockerd"),
              pytest.mark.timeout(600)]

BASE = "moor-debian:bookworm"
_INSTALL = ("RUN echo \"$APT_SOURCE\" > /etc/apt/sources.list \\\n"
            " && apt-get update -q && apt-get install -y -q --no-install-recommends {} \\\n"
            " && rm -rf /var/lib/apt/lists/*\n")
WEBAPP = ("FROM " + BASE + "\nARG APT_SOURCE\n" + _INSTALL.format("python3") +
          "WORKDIR /app\nCOPY app.py .\nUSER nobody\nENV PORT=8000\nEXPOSE 8000\n"
          "CMD [\"python3\", \"app.py\"]\n")
APP = b'''import os
from wsgiref.simple_server import make_server


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"hello from {os.getuid()} at {environ['PATH_INFO']}\\n".encode()]


make_server("127.0.0.1", int(os.environ["PORT"]), app).serve_forever()
'''
NGINX = ("FROM " + BASE + "\nARG APT_SOURCE\nARG PORT=80\n" + _INSTALL.format("nginx-light") +
         "RUN sed -i -e \"s/listen 80 default_server;/listen 127.0.0.1:$PORT default_server;/\" "
         "-e '/listen \\[::\\]:80/d' /etc/nginx/sites-available/default\n"
         "COPY index.html /var/www/html/\nSTOPSIGNAL SIGQUIT\n"
         "CMD [\"nginx\", \"-g\", \"daemon off;\"]\n")
# Files whose contents record when apt and dpkg ran, not what they installed.
_TIMESTAMPED = {"var/log/dpkg.log", "var/log/apt/history.log", "var/log/apt/term.log",
                "var/log/apt/eipp.log.xz", "var/cache/ldconfig/aux-cache",
                "var/cache/debconf/templates.dat", "var/cache/debconf/templates.dat-old",
                "var/cache/debconf/config.dat", "var/cache/debconf/config.dat-old",
                "var/cache/apt/pkgcache.bin", "var/cache/apt/srcpkgcache.bin"}
# What an engine puts into every container, not the image.
_ENGINE_FILES = {".dockerenv", "etc/hosts", "etc/hostname", "etc/resolv.conf", "etc/mtab",
                 "dev", "proc", "sys"}


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    base_tar = (bookworm() / "rootfs.tar").read_bytes()
    with classic_builder(), daemon_pair("moor-build-deb-", BASE, base_tar) as pair:
        yield pair


@pytest.fixture(scope="module")
def apt_source() -> Iterator[str]:
    with serve_repo(bookworm() / "repo") as line:
        yield line


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # type: ignore[no-any-return]


def _filesystem(daemon: Daemon | Dockerd, tag: str) -> dict[str, tuple]:
    """Path → (type, mode, owner, size, link or content digest) of the image's files."""
    created = daemon.docker("create", "--pull=never", tag, check=True).stdout.decode().strip()
    try:
        with tempfile.TemporaryFile() as out:
            subprocess.run([DOCKER_CLI, "-H", daemon.host, "export", created], stdout=out,
                           check=True, timeout=120)
            out.seek(0)
            found = {}
            with tarfile.open(fileobj=out, mode="r|") as tar:
                for member in tar:
                    name = member.name.removeprefix("./").rstrip("/")
                    if name.split("/")[0] in _ENGINE_FILES or name in _ENGINE_FILES:
                        continue
                    if member.islnk():  # which of the names comes first is the tar's choice
                        found[name] = found[member.linkname.removeprefix("./")]
                        continue
                    content = member.linkname
                    if member.isfile() and name not in _TIMESTAMPED:
                        content = hashlib.sha256(tar.extractfile(member).read()).hexdigest()
                    # dockerd's tar headers carry the file type in the mode too; moord's do not.
                    found[name] = (member.type, member.mode & 0o7777, member.uid, member.gid,
                                   member.size if name not in _TIMESTAMPED else 0, content)
            return found
    finally:
        daemon.docker("rm", "-f", created)


def _build_both(pair: Pair, dockerfile: str, files: dict[str, bytes], tag: str,
                *args: str) -> None:
    with tempfile.TemporaryDirectory(prefix="ctx-") as directory:
        Path(directory, "Dockerfile").write_text(dockerfile)
        for name, content in files.items():
            Path(directory, name).write_bytes(content)
        # Side by side: the two builds are most of this module's time.
        with ThreadPoolExecutor(2) as pool:
            ours, theirs = pool.map(lambda d: d.docker(
                "build", "--network", "host", "-t", tag, *args, directory, timeout=600),
                (pair.moord, pair.dockerd))
    assert ours.returncode == theirs.returncode == 0, \
        (ours.stdout.decode()[-3000:], ours.stderr.decode(), theirs.stderr.decode()[-3000:])


def _same_image(pair: Pair, tag: str) -> None:
    mine, real = pair.inspect(tag, CONFIG_FIELDS)
    assert mine == real
    with ThreadPoolExecutor(2) as pool:
        ours, theirs = pool.map(lambda d: _filesystem(d, tag), (pair.moord, pair.dockerd))
    assert len(ours) > 5000
    differing = sorted(p for p in ours.keys() | theirs.keys() if ours.get(p) != theirs.get(p))
    assert not differing, [(p, ours.get(p), theirs.get(p)) for p in differing[:20]]


def _answers(daemon: Daemon | Dockerd, tag: str, url: str, *args: str) -> str:
    """Run `tag` on the host's network until `url` answers; its body."""
    name = f"srv-{uuid.uuid4().hex[:8]}"
    daemon.docker("run", "-d", "--pull=never", "--name", name, "--network", "host",
                  "--dns", "127.0.0.1", *args, tag, check=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    return response.read().decode()  # type: ignore[no-any-return]
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        daemon.docker("rm", "-f", name)


def test_python_webapp(pair: Pair, apt_source: str) -> None:
    tag = f"webapp-{uuid.uuid4().hex[:6]}"
    try:
        _build_both(pair, WEBAPP, {"app.py": APP}, tag, "--build-arg",
                    f"APT_SOURCE={apt_source}")
        _same_image(pair, tag)
        for daemon in (pair.moord, pair.dockerd):
            port = _free_port()
            body = _answers(daemon, tag, f"http://127.0.0.1:{port}/ping", "-e", f"PORT={port}")
            assert body == "hello from 65534 at /ping\n"
    finally:
        pair.both("rmi", "-f", tag)


def test_nginx(pair: Pair, apt_source: str) -> None:
    tag = f"nginx-{uuid.uuid4().hex[:6]}"
    port = _free_port()
    try:
        _build_both(pair, NGINX, {"index.html": b"<h1>moored</h1>\n"}, tag, "--build-arg",
                    f"APT_SOURCE={apt_source}", "--build-arg", f"PORT={port}")
        _same_image(pair, tag)
        for daemon in (pair.moord, pair.dockerd):
            assert _answers(daemon, tag, f"http://127.0.0.1:{port}/") == "<h1>moored</h1>\n"
    finally:
        pair.both("rmi", "-f", tag)
