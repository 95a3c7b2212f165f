"""Online garbage collection: it runs while pushes and uploads go on, and loses nothing live."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from registrykit import (
    Server,
    image_manifest,
    push_blob,
    put_manifest,
    sha256,
    start_moor,
)


@pytest.fixture
def fresh() -> Iterator[tuple[Server, str]]:
    """A registry of its own (GC sees the whole store); yields (server, storage dir)."""
    with tempfile.TemporaryDirectory(prefix="moor-registry-gc-") as base, \
            start_moor(base) as server:
        yield server, server.storage


def _gc(server: Server, grace: float = 0) -> dict[str, float]:
    r = server.request("POST", f"/moor/registry/gc?grace={grace}")
    assert r.status == 200, r.body
    return r.json()


def _complete(server: Server, repo: str, ref: str) -> bool:
    """The manifest and every blob it references can be pulled."""
    r = server.request("GET", f"/v2/{repo}/manifests/{ref}")
    if r.status != 200:
        return False
    doc = r.json()
    digests = [doc["config"]["digest"]] + [layer["digest"] for layer in doc["layers"]]
    return all(server.request("HEAD", f"/v2/{repo}/blobs/{d}").status == 200 for d in digests)


def test_collects_unreferenced_and_keeps_referenced(fresh: tuple[Server, str]) -> None:
    server, storage = fresh
    data = image_manifest(server, "gc/app", layers=2)
    put_manifest(server, "gc/app", "v1", data)
    orphan = push_blob(server, "gc/app", b"orphan " + os.urandom(8))
    # Within the grace period an unreferenced blob is kept (its manifest may come next).
    assert _gc(server, grace=3600)["blobs_deleted"] == 0
    time.sleep(1.1)  # past the minimum grace of one second
    result = _gc(server, grace=0)
    assert result["blobs_deleted"] == 1
    assert server.request("HEAD", f"/v2/gc/app/blobs/{orphan}").status == 404
    assert _complete(server, "gc/app", "v1")
    digest = sha256(data)
    assert server.request("DELETE", f"/v2/gc/app/manifests/{digest}").status == 202
    time.sleep(1.1)
    assert _gc(server, grace=0)["blobs_deleted"] == 4  # manifest, config, two layers
    assert not any(Path(storage, "blobs").rglob("*.*")) and \
        not [p for p in Path(storage, "blobs").rglob("*") if p.is_file()]
    metrics = server.request("GET", "/metrics").body.decode()
    assert "moor_registry_gc_runs_total 3" in metrics


def test_upload_in_flight_survives_gc(fresh: tuple[Server, str]) -> None:
    server, _ = fresh
    data = os.urandom(4096)
    location = server.request("POST", "/v2/gc/up/blobs/uploads/").headers["Location"]
    r = server.request("PATCH", location, data[:2048], {"Content-Range": "0-2047"})
    assert r.status == 202
    time.sleep(1.1)
    _gc(server, grace=0)  # the session's data is not a blob yet: nothing to lose
    # Layers pushed, manifest not yet: the default grace period keeps them.
    pending = image_manifest(server, "gc/up", layers=2)
    _gc(server)
    assert server.request("PATCH", location, data[2048:], {"Content-Range": "2048-4095"}).status \
        == 202
    assert server.request("PUT", f"{location}?digest={sha256(data)}").status == 201
    assert server.request("GET", f"/v2/gc/up/blobs/{sha256(data)}").body == data
    assert put_manifest(server, "gc/up", "late", pending).status == 201
    assert _complete(server, "gc/up", "late")


def test_concurrent_pushes_while_collecting(fresh: tuple[Server, str]) -> None:
    """Pushers (blobs then manifest) race a collector with the shortest grace; nothing breaks."""
    server, _ = fresh
    stop = threading.Event()
    pushed: list[tuple[str, str]] = []
    failures: list[str] = []

    def pusher(worker: int) -> None:
        while not stop.is_set():
            repo, tag = f"gc/race{worker}", uuid.uuid4().hex[:8]
            r = put_manifest(server, repo, tag, image_manifest(server, repo, salt=tag))
            if r.status != 201:
                failures.append(r.body.decode())
            pushed.append((repo, tag))

    threads = [threading.Thread(target=pusher, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    runs = 0
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        _gc(server, grace=0)
        runs += 1
    stop.set()
    for t in threads:
        t.join()
    assert runs >= 2 and len(pushed) > 5
    assert failures == []
    assert all(_complete(server, repo, tag) for repo, tag in pushed)


def test_gc_subcommand(fresh: tuple[Server, str]) -> None:
    server, storage = fresh
    push_blob(server, "gc/cli", b"left alone")
    out = subprocess.run([sys.executable, "-m", "moorage.registry", "gc", "--storage", storage,
                          "--grace", "0", "--dry-run"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1])["marked"] == 0
