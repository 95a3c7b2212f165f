"""Volumes as plain directories, compared with a real dockerd: named volumes that outlive
their containers, anonymous ones from `-v /path`, `--mount type=volume` and an image's
VOLUME, copy-up of the image's content, `rm -v` and `--rm`, read-only volumes, and the
errors for refused specifications; inspect's Mounts with IDs and data-roots masked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from comparekit import Pair, mask
from enginekit import Daemon
from peers import Dockerd, dockerd_available, start_dockerd, stop_dockerd

from moorage.devkit import busybox

pytestmark = pytest.mark.skipif(not dockerd_available(), reason="needs dockerd")
PLAIN = "moor-volumes:plain"
WITH_VOLUME = "moor-volumes:volume"     # VOLUME /data over /data/hello, owned 1000:1000, 0750


@pytest.fixture(scope="module")
def pair(moord: Daemon) -> Iterator[Pair]:
    with tempfile.TemporaryDirectory(prefix="moor-volumes-") as base:
        root = Path(base)
        rootfs = root / "rootfs"
        busybox.build_rootfs(str(rootfs))
        (rootfs / "data").mkdir()
        (rootfs / "data" / "hello").write_text("hello from the image\n")
        for path in (rootfs / "data", rootfs / "data" / "hello"):
            os.chown(path, 1000, 1000)
        (rootfs / "data").chmod(0o750)
        tar = subprocess.run(["tar", "-C", str(rootfs), "-c", "."], capture_output=True,
                             check=True).stdout
        (root / "dockerd").mkdir()
        dockerd = start_dockerd(str(root / "dockerd"))
        try:
            for daemon in (moord, dockerd):
                daemon.docker("import", "-", PLAIN, input=tar, check=True)
                daemon.docker("import", "--change", "VOLUME /data", "-", WITH_VOLUME,
                              input=tar, check=True)
            yield Pair(moord, dockerd, root)
            for daemon in (moord, dockerd):
                daemon.docker("rmi", PLAIN, WITH_VOLUME, check=True)
        finally:
            stop_dockerd(dockerd)


class Made:
    """What a test creates on both daemons, removed at teardown (anonymous volumes with
    their containers, named ones by name)."""

    def __init__(self, pair: Pair) -> None:
        self.pair = pair
        self.containers: list[str] = []
        self.volumes: list[str] = []

    def container(self) -> str:
        self.containers.append(f"c-{uuid.uuid4().hex[:8]}")
        return self.containers[-1]

    def volume(self) -> str:
        self.volumes.append(f"vol-{uuid.uuid4().hex[:8]}")
        return self.volumes[-1]


@pytest.fixture
def made(pair: Pair) -> Iterator[Made]:
    made = Made(pair)
    yield made
    if made.containers:
        pair.both("rm", "-f", "-v", *made.containers)
    for name in made.volumes:
        remove_volume(pair.moord, name)
        remove_volume(pair.dockerd, name)


def remove_volume(daemon: Daemon | Dockerd, name: str) -> None:
    if isinstance(daemon, Dockerd):
        daemon.docker("volume", "rm", "-f", name, check=True)
    else:  # moord has no /volumes endpoints yet: its volume is its directory
        shutil.rmtree(os.path.join(daemon.data_root, "volumes", name), ignore_errors=True)


def volume_names(daemon: Daemon | Dockerd) -> set[str]:
    root = os.path.join(daemon.data_root, "volumes")
    return {n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n, "_data"))}


def both_volume_names(pair: Pair) -> list[set[str]]:
    return [volume_names(pair.moord), volume_names(pair.dockerd)]


def mounts(daemon: Daemon | Dockerd, container: str) -> list[dict]:
    """inspect's Mounts, by destination, with the data-root and volume IDs masked."""
    result = daemon.docker("inspect", container, check=True)
    doc = json.loads(mask(result.stdout.replace(daemon.data_root.encode(), b"<ROOT>")))
    return sorted(doc[0]["Mounts"], key=lambda m: m["Destination"])


def same_mounts(pair: Pair, container: str) -> list[dict]:
    ours, theirs = mounts(pair.moord, container), mounts(pair.dockerd, container)
    assert ours == theirs
    return ours


def test_named_volume_persists(pair: Pair, made: Made) -> None:
    volume, writer, reader = made.volume(), made.container(), made.container()
    pair.same("run", "--name", writer, "-v", f"{volume}:/data", PLAIN, "sh", "-c",
              "echo kept > /data/f")
    pair.same("create", "--name", reader, "--mount", f"type=volume,src={volume},dst=/data",
              PLAIN, "cat", "/data/f")
    assert pair.same("start", "-a", reader) == 0
    found = same_mounts(pair, writer) + same_mounts(pair, reader)
    assert [(m["Type"], m["Name"], m["Source"], m["Mode"]) for m in found] == [
        ("volume", volume, f"<ROOT>/volumes/{volume}/_data", "z")] * 2
    # A named volume stays with rm -v: only anonymous ones go.
    pair.same("rm", "-v", writer, reader)
    assert volume in volume_names(pair.moord) and volume in volume_names(pair.dockerd)
    pair.same("run", "--rm", "-v", f"{volume}:/data", PLAIN, "cat", "/data/f")


def test_read_only_volume(pair: Pair, made: Made) -> None:
    volume, short, long = made.volume(), made.container(), made.container()
    assert pair.same("run", "--name", short, "-v", f"{volume}:/data:ro", PLAIN, "sh", "-c",
                     "ls /data; touch /data/f") == 1
    pair.same("create", "--name", long, "--mount",
              f"type=volume,src={volume},dst=/data,readonly", PLAIN, "true")
    assert [(m["Mode"], m["RW"]) for m in same_mounts(pair, short) + same_mounts(pair, long)] \
        == [("ro", False), ("z", False)]


def test_anonymous_volumes_go_with_rm_v(pair: Pair, made: Made) -> None:
    before = both_volume_names(pair)
    container = made.container()
    pair.same("run", "--name", container, "-v", "/anon", "--mount", "type=volume,dst=/opt",
              WITH_VOLUME, "sh", "-c", "cat /data/hello; ls -A /anon /opt")
    found = same_mounts(pair, container)
    assert [(m["Destination"], m["Name"], m["Mode"]) for m in found] == [
        ("/anon", "<ID>", ""), ("/data", "<ID>", ""), ("/opt", "<ID>", "z")]
    now = both_volume_names(pair)
    assert [len(now[i] - before[i]) for i in (0, 1)] == [3, 3]
    pair.same("rm", "-v", container)
    pair.same("run", "--rm", "-v", "/anon", WITH_VOLUME, "true")
    assert both_volume_names(pair) == before
    # Without -v they stay behind, dangling.
    kept = made.container()
    pair.same("create", "--name", kept, WITH_VOLUME, "true")
    pair.same("rm", kept)
    for daemon, then in zip((pair.moord, pair.dockerd), before, strict=True):
        left = volume_names(daemon) - then
        assert len(left) == 1
        remove_volume(daemon, left.pop())


def test_copy_up(pair: Pair, made: Made) -> None:
    volume = made.volume()
    show = "stat -c '%u:%g %a %n' /data /data/*; cat /data/*"
    # An empty named volume is filled from the image, owner and mode of /data included.
    pair.same("run", "--rm", "-v", f"{volume}:/data", WITH_VOLUME, "sh", "-c",
              "echo more > /data/more")
    ours = pair.moord.docker("run", "--rm", "-v", f"{volume}:/data", PLAIN, "sh", "-c", show)
    assert b"1000:1000 750 /data\n" in ours.stdout and b"hello from the image" in ours.stdout
    pair.same("run", "--rm", "-v", f"{volume}:/data", PLAIN, "sh", "-c", show)
    # A volume that holds something is left as it is.
    pair.same("run", "--rm", "-v", f"{volume}:/data", WITH_VOLUME, "sh", "-c",
              "rm /data/hello; ls -A /data")
    pair.same("run", "--rm", "-v", f"{volume}:/data", WITH_VOLUME, "ls", "-A", "/data")
    for spec in (["-v", f"{made.volume()}:/data:nocopy"],
                 ["--mount", f"type=volume,src={made.volume()},dst=/data,volume-nocopy"]):
        ours = pair.moord.docker("run", "--rm", *spec, WITH_VOLUME, "ls", "-A", "/data")
        assert ours.returncode == 0 and ours.stdout == b""
        pair.same("run", "--rm", *spec, WITH_VOLUME, "ls", "-A", "/data")


@pytest.mark.parametrize("spec", [
    ["-v", "bad$name:/data"], ["-v", "data:relative"], ["-v", "data:/"],
    ["-v", "data:/d:bogus"], ["-v", "data:/d:ro,rw"], ["-v", "ab:/d:rw,rshared"],
    ["-v", "/tmp:/d:nocopy"], ["--mount", "type=volume,src=/abs,dst=/x"],
    ["--mount", "type=volume,src=a,dst=/x"], ["--mount", "type=volume,src=ab,dst=rel"],
    ["--mount", "type=volume,dst=/x,readonly"],
])
def test_refused_specs(pair: Pair, spec: list[str]) -> None:
    before = both_volume_names(pair)
    assert pair.same("create", *spec, PLAIN, "true") == 1
    assert both_volume_names(pair) == before
