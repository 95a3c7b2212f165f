"""docker commit and docker diff on moord and a real dockerd, side by side."""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from collections.abc import Iterator

import pytest
from comparekit import Pair, daemon_pair, mask
from peers import dockerd_available

pytestmark = pytest.mark.skipif(not dockerd_available(), reason="needs dockerd")


@pytest.fixture(scope="module")
def pair(busybox_tar: bytes) -> Iterator[Pair]:
    with daemon_pair("moor-commit-", "busybox:latest", busybox_tar) as pair:
        yield pair


_SCRIPT = ("echo new > /added && echo more >> /etc/passwd && rm /etc/group && "
           "mkdir -p /d/e && touch /d/e/f && rm -rf /home && mkdir /home && touch /home/x")


def test_diff_and_commit(pair: Pair) -> None:
    name = f"c-{uuid.uuid4().hex[:8]}"
    tag = f"committed-{uuid.uuid4().hex[:6]}"
    try:
        pair.same("run", "--name", name, "busybox:latest", "sh", "-c", _SCRIPT)
        # dockerd 20.10 lists them in its map's random order: compare them sorted.
        ours, theirs = (sorted(r.stdout.decode().splitlines()) for r in pair.both("diff", name))
        assert ours == theirs
        pair.same("commit", "-a", "me", "-m", "a message", "-c", 'CMD ["cat", "/added"]',
                  "-c", "ENV A=1", "-c", "EXPOSE 80", name, tag, compare_stdout=False)
        pair.same("run", "--rm", tag)
        pair.same("run", "--rm", tag, "sh", "-c",
                  "ls /etc/group; tail -1 /etc/passwd; ls -R /d /home; echo $A")
        ours, theirs = pair.inspect(tag, ["Author", "Comment", "Config.Cmd", "Config.Env",
                                          "Config.ExposedPorts", "Config.Entrypoint"])
        assert ours == theirs
        for daemon in (pair.moord, pair.dockerd):
            history = daemon.docker("history", "--no-trunc", "--format",
                                    "{{.CreatedBy}}|{{.Comment}}", tag, check=True)
            assert mask(history.stdout).splitlines()[0] == "sh -c " + _SCRIPT + "|a message"
    finally:
        pair.both("rm", "-f", name)
        pair.both("rmi", tag)


def test_errors(pair: Pair) -> None:
    pair.same("diff", "nope-nope")
    pair.same("commit", "nope-nope")
    name = f"c-{uuid.uuid4().hex[:8]}"
    try:
        pair.same("create", "--name", name, "busybox:latest", compare_stdout=False)
        pair.same("diff", name)
        pair.same("commit", "-c", "BOGUS x", name)
        pair.same("commit", name, "UPPER:bad")
    finally:
        pair.both("rm", "-f", name)


# A container's changes that make every kind of tar entry: files of several owners (the
# host has a name for uid 1, the image none), a sub-second time, a link, a FIFO, a device, a
# deleted file (a whiteout in the layer) and a directory replaced (opaque).
_ENTRIES = ("mkdir -p /d/e && echo hi > /d/f && ln -s /d/f /d/sl && mkfifo /d/p && "
            "mknod /d/c c 1 3 && chown 1:1 /d/f && chown 4242:4242 /d/e && chmod 4755 /d/f && "
            "ln /d/f /d/hl && mkdir -p /d/{a}/{a}/{a} && touch /d/{a}/{a}/{a}/{f} && "
            "ln -s /d/{a}/{a}/{a}/{f} /d/{link} && "
            "rm /etc/group && rm -rf /home && mkdir /home && touch /home/x"
            ).format(a="a" * 40, f="f" * 60, link="l" * 110)


# What dockerd's init layer holds (mount points of the files the engine writes, made
# 0755): moord has no such layer.
_INIT_LAYER = {".dockerenv", "etc/hostname", "etc/hosts", "etc/resolv.conf", "etc/mtab",
               "dev/console", "dev/pts", "dev/shm"}


def _headers(data: bytes) -> dict[str, dict[str, object]]:
    """Each entry's raw header fields, by name, with the extended header before it."""
    found = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar:
            block = data[member.offset_data - 512:member.offset_data]
            found[member.name.rstrip("/")] = {
                "extended": data[member.offset:member.offset_data - 512],
                "mode": block[100:108], "owner": block[108:124], "size": block[124:136],
                "mtime": block[136:148], "type": block[156:157], "link": block[157:257],
                "magic": block[257:265], "names": block[265:329], "device": block[329:345],
                "pax": member.pax_headers}
    return found


def _compare(ours: dict, theirs: dict, changed: tuple[str, ...], *, names: bool,
             at_least: int) -> None:
    """The headers of the entries both tars have; the times of those the container
    changed (made at another moment on each daemon) left out, and, unless `names`, the
    owner names (deliberately none in moord's layers: see image/diff.py)."""
    common = set(ours) & set(theirs) - _INIT_LAYER
    assert len(common) >= at_least
    for name in sorted(common):
        mine, reference = dict(ours[name]), dict(theirs[name])
        for fields in (mine, reference):
            if name.startswith(changed) or name in ("dev", "etc", "home", "d"):
                fields.pop("mtime")
            if not names:
                fields.pop("names")
        assert mine == reference, name


def test_export_and_layer_tar_headers(pair: Pair) -> None:
    """docker export, docker cp out and a committed layer (from docker save) have dockerd's
    headers: Go's file-type bits in the mode, octal zero device numbers, whole-second
    times without PAX records, hard links, the image's owner names in an export and cp,
    moby's whiteouts."""
    name = f"c-{uuid.uuid4().hex[:8]}"
    tag = f"headers-{uuid.uuid4().hex[:6]}"
    try:
        pair.same("run", "--name", name, "busybox:latest", "sh", "-c", _ENTRIES)
        ours, theirs = (_headers(r.stdout) for r in pair.both("export", name))
        _compare(ours, theirs, ("d/", "home/"), names=True, at_least=200)
        assert ours["d/f"]["mode"] == b"0104755\0" and ours["bin"]["names"].startswith(b"root")
        assert ours["d/hl"]["type"] == b"1" and ours["d/hl"]["link"].startswith(b"d/f\0")
        ours, theirs = (_headers(r.stdout) for r in pair.both("cp", f"{name}:/d", "-"))
        _compare(ours, theirs, ("d",), names=True, at_least=7)
        pair.same("commit", name, tag, compare_stdout=False)
        # The layer reads back whole.
        pair.same("run", "--rm", tag, "sh", "-c",
                  "find /d | sort; cat /d/hl; stat -c '%n %a %u %h' /d/*")
        layers = []
        for result in pair.both("save", tag):
            with tarfile.open(fileobj=io.BytesIO(result.stdout)) as image:
                manifest = json.load(image.extractfile("manifest.json"))  # type: ignore[arg-type]
                layers.append(image.extractfile(manifest[0]["Layers"][-1]).read())  # type: ignore[union-attr]
        ours, theirs = (_headers(layer) for layer in layers)
        assert {"etc/.wh.group", "home/.wh..wh..opq", "d/c", "d/hl"} <= set(ours) & set(theirs)
        _compare(ours, theirs, ("",), names=False, at_least=10)
    finally:
        pair.both("rm", "-f", name)
        pair.both("rmi", tag)


def test_committed_config_without_variables(pair: Pair) -> None:
    """A container with no variable commits to an image whose Env is null, as dockerd's;
    with -c ENV, just that one."""
    name = f"c-{uuid.uuid4().hex[:8]}"
    tags = [f"noenv-{uuid.uuid4().hex[:6]}", f"oneenv-{uuid.uuid4().hex[:6]}"]
    try:
        pair.same("create", "--name", name, "busybox:latest", "true", compare_stdout=False)
        pair.same("inspect", "-f", "{{json .Config.Env}}", name)
        pair.same("commit", name, tags[0], compare_stdout=False)
        pair.same("commit", "-c", "ENV B=2", name, tags[1], compare_stdout=False)
        for tag in tags:
            pair.same("image", "inspect", "-f", "{{json .Config.Env}}", tag)
    finally:
        pair.both("rm", "-f", name)
        pair.both("rmi", *tags)


# moby's daemon/initlayer, as a container sees it; not the mounts over them, so each
# path is looked at in a stopped container.
_INIT = ("/.dockerenv", "/etc/mtab", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf",
         "/dev/console", "/dev/pts", "/dev/shm", "/proc", "/sys")


def _entries(tar: bytes, names: set[str] | None = None) -> list[tuple]:
    """(name, type, permissions, owner, size, link) of a tar's members (those in `names`)."""
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        return sorted((m.name.removeprefix("./"), m.type, m.mode & 0o7777, m.uid, m.gid,
                       m.size, m.linkname) for m in archive.getmembers()
                      if names is None or m.name.removeprefix("./") in names)


def test_init_layer(pair: Pair) -> None:
    """Every container lies on dockerd's init layer (/.dockerenv, /etc/mtab to
    /proc/mounts...): its export and ``docker cp`` show it, neither ``docker diff`` nor
    a commit does, and it covers an image's own /etc/mtab."""
    name, changed, mtab, private, private_tag = (f"c-{uuid.uuid4().hex[:8]}" for _ in range(5))
    tag = f"committed-{uuid.uuid4().hex[:6]}"
    try:
        pair.same("run", "--rm", "busybox:latest", "sh", "-c",
                  "stat -c '%n %F %a %u:%g %s %N' /.dockerenv /etc/mtab; ls -a /")
        pair.same("run", "--name", name, "busybox:latest", "true")
        pair.same("diff", name)
        exports = [_entries(r.stdout, {p[1:] for p in _INIT} | {"dev", "etc"})
                   for r in pair.both("export", name)]
        assert exports[0] == exports[1] and len(exports[0]) == len(_INIT) + 2
        for path in ("/.dockerenv", "/etc/mtab"):
            ours, theirs = (_entries(r.stdout) for r in pair.both("cp", f"{name}:{path}", "-"))
            assert ours == theirs
        # A commit of an unchanged container adds an empty layer; removing the init
        # layer's entries is a change like any other.
        pair.same("commit", name, tag, compare_stdout=False)
        pair.same("history", "--format", "{{.Size}}", tag)
        pair.same("run", "--name", changed, "busybox:latest", "sh", "-c",
                  "rm /.dockerenv /etc/mtab && echo mine > /etc/mtab")
        ours, theirs = (sorted(r.stdout.decode().splitlines())
                        for r in pair.both("diff", changed))
        assert ours == theirs == ["C /etc", "C /etc/mtab", "D /.dockerenv"]
        # An image's own /etc/mtab and /.dockerenv are covered by the init layer's.
        pair.same("commit", changed, mtab, compare_stdout=False)
        pair.same("run", "--rm", mtab, "sh", "-c",
                  "stat -c '%n %F %a %s %N' /.dockerenv /etc/mtab; ls /etc")
        # The init layer lies above the image's: its /etc and /dev are what a container
        # sees of an image whose own are another mode and owner.
        pair.same("run", "--name", private, "busybox:latest", "sh", "-c",
                  "mkdir -p /dev && chmod 700 /etc /dev && chown 1000:1000 /etc /dev")
        pair.same("commit", private, private_tag, compare_stdout=False)
        pair.same("run", "--rm", private_tag, "stat", "-c", "%n %a %u:%g", "/etc", "/dev")
    finally:
        pair.both("rm", "-f", name, changed, private)
        pair.both("rmi", tag, mtab, private_tag)

