"""A Debian bookworm base image and a local apt repository for realistic builds.

The host makes them once from the Debian mirror (the only registry it may reach):
`mmdebstrap --variant=minbase` for the base image's rootfs, and in the same run, inside
that rootfs, `apt-get install --download-only` of the packages the test images install,
so their .debs match the base's package versions exactly. The .debs become a flat apt
repository (`dpkg-scanpackages`) that a test serves on loopback: a build's RUN steps
(`--network host`) install from it, never from the internet.

Both are cached outside the clone (MOORAGE_TEST_CACHE, /var/cache/moorage-tests by
default) with a manifest of their SHA-256 sums, checked at every use: a partial or
altered cache is made again, and a fresh machine makes it on the first run (~1 min).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import http.server
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

# What the realistic test images apt-get install (with --no-install-recommends).
PACKAGES = ("python3", "nginx-light")
_VERSION = 2  # bumped when what the cache holds changes
_SOURCES = ("deb http://deb.debian.org/debian bookworm main",
            "deb http://deb.debian.org/debian bookworm-updates main",
            "deb http://deb.debian.org/debian-security bookworm-security main")


def cache_dir() -> Path:
    return Path(os.environ.get("MOORAGE_TEST_CACHE", "/var/cache/moorage-tests")) / "bookworm"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _manifest(root: Path) -> dict:
    files = ["rootfs.tar", *sorted(f"repo/{p.name}" for p in (root / "repo").iterdir())]
    return {"version": _VERSION, "packages": list(PACKAGES),
            "sha256": {name: _sha256(root / name) for name in files}}


def _valid(root: Path) -> bool:
    try:
        recorded = json.loads((root / "manifest.json").read_text())
        return recorded == _manifest(root)
    except (OSError, ValueError):
        return False


def _make(root: Path) -> None:
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "repo").mkdir(parents=True)
    download = (f'chroot "$1" apt-get install --download-only -y -q --no-install-recommends '
                f'{" ".join(PACKAGES)}')
    keep = f'cp "$1"/var/cache/apt/archives/*.deb {partial / "repo"}/'
    # merged-usr by mmdebstrap's own hook: no usrmerge package, so no perl in the base.
    subprocess.run(["mmdebstrap", "--mode=root", "--variant=minbase", "-q",
                    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
                    f"--customize-hook={download}", f"--customize-hook={keep}",
                    "bookworm", str(partial / "rootfs.tar"), *_SOURCES],
                   check=True, stdin=subprocess.DEVNULL)
    with open(partial / "repo" / "Packages", "wb") as index:
        subprocess.run(["dpkg-scanpackages", "-m", ".", "/dev/null"], cwd=partial / "repo",
                       stdout=index, stderr=subprocess.DEVNULL, check=True)
    (partial / "manifest.json").write_text(json.dumps(_manifest(partial)))
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)


@functools.cache
def bookworm() -> Path:
    """The checked cache: rootfs.tar and repo/ (the .debs and their Packages index)."""
    root = cache_dir()
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / ".bookworm.lock", "w") as lock:
        # Several test runs on one machine make it once.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _valid(root):
            _make(root)
    return root


@contextlib.contextmanager
def serve_repo(repo: Path) -> Iterator[str]:
    """The flat repository over HTTP on 127.0.0.1; yields its sources.list line."""
    handler = functools.partial(_QuietHandler, directory=str(repo))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"deb [trusted=yes] http://127.0.0.1:{server.server_address[1]}/ ./"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass
