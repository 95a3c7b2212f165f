"""Layer application on a real filesystem: round trips, whiteouts, hostile archives.

Runs as root (device nodes, ownership, trusted.* xattrs).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from backports import zstd

from moorage.errors import InvalidParameter
from moorage.image.compression import CHUNK, decompressed
from moorage.image.layer import AppliedLayer, apply_layer

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

MTIME = 1_600_000_000


def entry(
    name: str,
    kind: bytes = tarfile.REGTYPE,
    data: bytes = b"",
    *,
    mode: int = 0o644,
    uid: int = 0,
    gid: int = 0,
    mtime: float = MTIME,
    linkname: str = "",
    pax: dict[str, str] | None = None,
    device: tuple[int, int] = (0, 0),
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, mtime
    info.linkname = linkname
    info.size = len(data)
    info.devmajor, info.devminor = device
    info.pax_headers = pax or {}
    return info, data


def directory(name: str, mode: int = 0o755, **kw: Any) -> tuple[tarfile.TarInfo, bytes]:
    return entry(name, tarfile.DIRTYPE, mode=mode, **kw)


def symlink(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return entry(name, tarfile.SYMTYPE, linkname=target, mode=0o777)


def hardlink(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return entry(name, tarfile.LNKTYPE, linkname=target)


def make_tar(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    path = tmp_path / "layer"
    path.mkdir()
    return path


def apply(data: bytes, dest: Path) -> tuple[str, int]:
    applied = apply_layer(io.BytesIO(data), str(dest))
    return applied.diff_id, applied.size


def refused(data: bytes, dest: Path) -> str:
    with pytest.raises(InvalidParameter) as caught:
        apply_layer(io.BytesIO(data), str(dest))
    assert os.listdir(dest) == [], "a failed layer must leave nothing behind"
    message = str(caught.value)
    assert message.startswith("layer: ") and "\n" not in message
    return message


# --- round trips ------------------------------------------------------------------


def test_files_dirs_links_and_attributes_round_trip(dest: Path) -> None:
    layer = make_tar(
        directory("etc", mode=0o755, mtime=MTIME + 1),
        entry("etc/passwd", data=b"root:x:0:0\n", mode=0o600, uid=12, gid=34, mtime=MTIME + 2),
        entry("bin/su", data=b"\x7fELF", mode=0o4755, mtime=MTIME + 3.5),
        hardlink("bin/su-again", "bin/su"),
        hardlink("bin/su-abs", "/bin/su"),
        symlink("bin/sh", "busybox"),
        symlink("etc/escape", "../../../../etc/shadow"),
        directory("ro", mode=0o555, uid=7, gid=8, mtime=MTIME + 4),
        entry("ro/inside", data=b"x"),
        entry("dev/null", tarfile.CHRTYPE, mode=0o666, device=(1, 3)),
        entry("dev/loop9", tarfile.BLKTYPE, mode=0o660, device=(7, 9)),
        entry("run/fifo", tarfile.FIFOTYPE, mode=0o620, uid=5),
        entry("big", data=os.urandom(3 << 20)),
    )
    diff_id, size = apply(layer, dest)

    assert diff_id == "sha256:" + hashlib.sha256(layer).hexdigest()
    assert size == len(b"root:x:0:0\n") + 4 + 1 + (3 << 20)

    passwd = os.lstat(dest / "etc/passwd")
    assert (dest / "etc/passwd").read_bytes() == b"root:x:0:0\n"
    assert (stat.S_IMODE(passwd.st_mode), passwd.st_uid, passwd.st_gid) == (0o600, 12, 34)
    assert passwd.st_mtime_ns == (MTIME + 2) * 10**9

    su = os.lstat(dest / "bin/su")
    assert stat.S_IMODE(su.st_mode) == 0o4755
    assert su.st_mtime_ns == int((MTIME + 3.5) * 10**9)
    assert os.lstat(dest / "bin/su-again").st_ino == su.st_ino
    assert os.lstat(dest / "bin/su-abs").st_ino == su.st_ino

    assert os.readlink(dest / "bin/sh") == "busybox"
    assert os.readlink(dest / "etc/escape") == "../../../../etc/shadow"
    assert os.lstat(dest / "bin/sh").st_mtime_ns == MTIME * 10**9

    ro = os.lstat(dest / "ro")
    assert (stat.S_IMODE(ro.st_mode), ro.st_uid, ro.st_gid) == (0o555, 7, 8)
    # Set after its child was written, so the child did not bump it.
    assert ro.st_mtime_ns == (MTIME + 4) * 10**9
    assert os.lstat(dest / "etc").st_mtime_ns == (MTIME + 1) * 10**9

    null = os.lstat(dest / "dev/null")
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE(null.st_mode) == 0o666
    loop = os.lstat(dest / "dev/loop9")
    assert stat.S_ISBLK(loop.st_mode) and loop.st_rdev == os.makedev(7, 9)
    fifo = os.lstat(dest / "run/fifo")
    assert stat.S_ISFIFO(fifo.st_mode) and stat.S_IMODE(fifo.st_mode) == 0o620
    assert fifo.st_uid == 5

    # Parents the archive lacks are made 0755, like Docker's MkdirAll.
    assert stat.S_IMODE(os.lstat(dest / "bin").st_mode) == 0o755


def test_xattrs_from_pax_headers(dest: Path) -> None:
    layer = make_tar(
        directory("d", pax={"SCHILY.xattr.user.dir": "on-a-dir"}),
        entry("d/f", data=b"x", pax={"SCHILY.xattr.user.note": "h\u00e9llo"}),
        entry("d/bin", data=b"x", pax={"SCHILY.xattr.trusted.raw": "\x01\udcff\x00"}),
    )
    apply(layer, dest)
    assert os.getxattr(dest / "d", "user.dir") == b"on-a-dir"
    assert os.getxattr(dest / "d/f", "user.note") == "h\u00e9llo".encode()
    assert os.getxattr(dest / "d/bin", "trusted.raw") == b"\x01\xff\x00"


def test_root_entry_sets_the_destination_attributes(dest: Path) -> None:
    apply(make_tar(directory("./", mode=0o711, mtime=MTIME), entry("./f", data=b"1")), dest)
    root = os.lstat(dest)
    assert stat.S_IMODE(root.st_mode) == 0o711
    assert root.st_mtime_ns == MTIME * 10**9
    assert (dest / "f").read_bytes() == b"1"


def test_later_entries_replace_earlier_ones(dest: Path) -> None:
    layer = make_tar(
        entry("a", data=b"first"),
        entry("a", data=b"second"),
        entry("b", data=b"file"),
        directory("b"),
        entry("b/inside", data=b"x"),
        directory("c"),
        entry("c/child", data=b"x"),
        symlink("c", "elsewhere"),
    )
    apply(layer, dest)
    assert (dest / "a").read_bytes() == b"second"
    assert (dest / "b/inside").read_bytes() == b"x"
    assert os.readlink(dest / "c") == "elsewhere"


def test_deep_paths(dest: Path) -> None:
    deep = "/".join(["d"] * 100)
    layer = make_tar(entry(f"{deep}/leaf", data=b"deep"), entry("top", data=b"top"))
    apply(layer, dest)
    assert (dest / deep / "leaf").read_bytes() == b"deep"


def test_absolute_and_dotted_names_stay_inside(dest: Path, tmp_path: Path) -> None:
    layer = make_tar(
        entry("/abs/../../evil", data=b"1"),
        entry("/etc/../etc/hosts", data=b"2"),
        entry("./a/./b/../c", data=b"3"),
        entry("//double", data=b"4"),
    )
    apply(layer, dest)
    assert (dest / "evil").read_bytes() == b"1"
    assert (dest / "etc/hosts").read_bytes() == b"2"
    assert (dest / "a/c").read_bytes() == b"3"
    assert (dest / "double").read_bytes() == b"4"
    assert not (tmp_path / "evil").exists()


# --- compression and the diff ID ----------------------------------------------------


SAMPLE = make_tar(
    directory("usr"),
    entry("usr/data", data=os.urandom(200_000) + bytes(2_000_000)),
    symlink("usr/link", "data"),
)


# Headers at 0 and 1024, each file's data in the block after its header.
TWO = make_tar(entry("a", data=b"1"), entry("b", data=b"2"))


def multi_member_gzip(data: bytes) -> bytes:
    half = len(data) // 2
    return gzip.compress(data[:half]) + gzip.compress(data[half:])


@pytest.mark.parametrize(
    "compress",
    [
        lambda d: d,
        gzip.compress,
        multi_member_gzip,
        zstd.compress,
        lambda d: zstd.compress(d[:1000]) + zstd.compress(d[1000:]),
        lzma.compress,
        bz2.compress,
    ],
    ids=["plain", "gzip", "gzip-members", "zstd", "zstd-frames", "xz", "bzip2"],
)
def test_every_compression_gives_the_plain_tars_diff_id(
    compress: Callable[[bytes], bytes], dest: Path
) -> None:
    diff_id, size = apply(compress(SAMPLE), dest)
    assert diff_id == "sha256:" + hashlib.sha256(SAMPLE).hexdigest()
    assert size == 2_200_000
    assert os.readlink(dest / "usr/link") == "data"


@pytest.mark.parametrize("compress", [gzip.compress, zstd.compress, lzma.compress])
def test_decompression_output_is_bounded(compress: Callable[[bytes], bytes]) -> None:
    bomb = compress(bytes(64 << 20))
    sizes = [len(chunk) for chunk in decompressed(io.BytesIO(bomb), "layer")]
    assert max(sizes) <= CHUNK
    assert sum(sizes) == 64 << 20


def test_bytes_after_the_end_marker_count_in_the_diff_id(dest: Path) -> None:
    padded = SAMPLE + bytes(4096) + b"trailing"
    diff_id, _ = apply(padded, dest)
    assert diff_id == "sha256:" + hashlib.sha256(padded).hexdigest()


def test_empty_stream_is_an_empty_layer(dest: Path) -> None:
    assert apply(b"", dest) == ("sha256:" + hashlib.sha256(b"").hexdigest(), 0)
    assert apply(gzip.compress(b""), dest)[1] == 0
    assert os.listdir(dest) == []


def test_a_stream_of_short_reads_is_read_whole(dest: Path) -> None:
    class Trickle(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = data

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            chunk, self._data = self._data[:3], self._data[3:]
            return chunk

    layer = make_tar(entry("f", data=b"x" * 5000))
    applied = apply_layer(Trickle(gzip.compress(layer)), str(dest))  # type: ignore[arg-type]
    assert (dest / "f").read_bytes() == b"x" * 5000
    assert applied == AppliedLayer("sha256:" + hashlib.sha256(layer).hexdigest(), 5000)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda: gzip.compress(SAMPLE)[:-100], "layer: gzip stream is truncated"),
        (lambda: gzip.compress(SAMPLE)[:5000], "layer: "),
        (lambda: flip(gzip.compress(SAMPLE), 3000), "layer: gzip stream is corrupt"),
        (lambda: gzip.compress(SAMPLE) + b"garbage", "layer: gzip stream is corrupt"),
        (lambda: zstd.compress(SAMPLE)[:-10], "layer: zstd stream is truncated"),
        (lambda: flip(zstd.compress(SAMPLE), 4), "layer: zstd stream is corrupt"),
        (lambda: lzma.compress(SAMPLE)[:-10], "layer: xz stream is truncated"),
        (lambda: SAMPLE[:3000], "unexpected end of data"),
        (lambda: TWO[:1024] + b"\x07" * 512 + TWO[1536:], "invalid tar stream: invalid header"),
        (lambda: TWO[:1100], "invalid tar stream: truncated header"),
    ],
    ids=[
        "gzip-truncated",
        "gzip-cut-mid-data",
        "gzip-flipped",
        "gzip-trailing-garbage",
        "zstd-truncated",
        "zstd-flipped",
        "xz-truncated",
        "tar-cut-mid-file",
        "tar-bad-header",
        "tar-cut-mid-header",
    ],
)
def test_damaged_streams_fail_cleanly(
    damage: Callable[[], bytes], message: str, dest: Path
) -> None:
    assert message in refused(damage(), dest)


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes(b ^ 0x55 for b in data[at : at + 64]) + data[at + 64 :]


# --- whiteouts ----------------------------------------------------------------------


def test_whiteouts_become_overlay_whiteouts(dest: Path) -> None:
    layer = make_tar(
        entry(".wh.file1"),
        directory("a"),
        entry("a/.wh.file2"),
        entry(".wh.b"),
        entry("file4", data=b"4"),
        directory("bin"),
        entry("bin/.wh..wh..opq"),
        entry("bin/new", data=b"n"),
        entry("implicit/.wh..wh..opq"),
    )
    apply(layer, dest)
    for hidden in ("file1", "a/file2", "b"):
        st = os.lstat(dest / hidden)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0, hidden
    assert sorted(os.listdir(dest / "a")) == ["file2"]
    assert os.getxattr(dest / "bin", "trusted.overlay.opaque") == b"y"
    assert os.getxattr(dest / "implicit", "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(dest / "bin")) == ["new"]
    with pytest.raises(OSError):
        os.getxattr(dest / "a", "trusted.overlay.opaque")


def test_directory_recreated_over_its_whiteout_is_opaque(dest: Path) -> None:
    apply(make_tar(entry(".wh.d"), directory("d"), entry("d/new", data=b"n")), dest)
    assert stat.S_ISDIR(os.lstat(dest / "d").st_mode)
    assert os.getxattr(dest / "d", "trusted.overlay.opaque") == b"y"


def test_aufs_metadata_is_skipped(dest: Path) -> None:
    layer = make_tar(directory(".wh..wh.plnk"), entry(".wh..wh.plnk/1.2", data=b"x"))
    apply(layer, dest)
    assert os.listdir(dest) == []


# --- hostile layers -----------------------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside"
    path.mkdir()
    (path / "secret").write_text("keep")
    return path


def test_dotdot_escape_is_refused(dest: Path, tmp_path: Path) -> None:
    message = refused(make_tar(entry("ok", data=b"1"), entry("../evil", data=b"x")), dest)
    assert message == "layer: ../evil: path escapes the layer's root"
    assert not (tmp_path / "evil").exists()
    message = refused(make_tar(entry("a/../../evil", data=b"x")), dest)
    assert message == "layer: a/../../evil: path escapes the layer's root"


def test_writing_through_a_symlink_is_refused(dest: Path, outside: Path) -> None:
    message = refused(make_tar(symlink("a", str(outside)), entry("a/evil", data=b"x")), dest)
    assert message == "layer: a/evil: parent a is a symlink"
    assert sorted(os.listdir(outside)) == ["secret"]


def test_symlink_chains_to_dotdot_are_refused(dest: Path, outside: Path) -> None:
    layer = make_tar(
        directory("x"),
        symlink("x/up", ".."),
        symlink("x/upup", "up/.."),
        entry("x/upup/outside/evil", data=b"x"),
    )
    message = refused(layer, dest)
    assert message == "layer: x/upup/outside/evil: parent x/upup is a symlink"
    assert sorted(os.listdir(outside)) == ["secret"]


def test_directory_swapped_for_a_symlink_is_not_followed(dest: Path, outside: Path) -> None:
    layer = make_tar(
        directory("d"),
        entry("d/f", data=b"1"),
        symlink("d", str(outside)),
        entry("d/secret", data=b"overwritten"),
    )
    assert refused(layer, dest) == "layer: d/secret: parent d is a symlink"
    assert (outside / "secret").read_text() == "keep"


def test_whiteout_through_a_symlink_is_refused(dest: Path, outside: Path) -> None:
    layer = make_tar(symlink("s", str(outside)), entry("s/.wh.secret"))
    assert refused(layer, dest) == "layer: s/.wh.secret: parent s is a symlink"
    assert (outside / "secret").read_text() == "keep"


def test_hardlink_out_of_the_layer_is_refused(dest: Path) -> None:
    message = refused(make_tar(hardlink("passwd", "../../etc/passwd")), dest)
    assert message == ("layer: passwd: hardlink target ../../etc/passwd escapes the layer's root")


def test_hardlink_through_a_symlink_is_refused(dest: Path, outside: Path) -> None:
    layer = make_tar(symlink("s", str(outside)), hardlink("stolen", "s/secret"))
    message = refused(layer, dest)
    assert message == "layer: stolen: hardlink target s/secret: parent s is a symlink"
    assert os.lstat(outside / "secret").st_nlink == 1


def test_hardlink_to_a_missing_target_is_refused(dest: Path) -> None:
    message = refused(make_tar(hardlink("link", "/etc/passwd")), dest)
    assert message == "layer: link: hardlink target /etc/passwd is not in the layer"


def test_hardlink_to_a_symlink_links_the_symlink_itself(dest: Path, outside: Path) -> None:
    apply(make_tar(symlink("s", str(outside / "secret")), hardlink("h", "s")), dest)
    assert os.readlink(dest / "h") == str(outside / "secret")
    assert os.lstat(outside / "secret").st_nlink == 1


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([entry("./", data=b"x")], "layer: ./: only a directory can be the layer's root"),
        ([symlink(".", "/")], "layer: .: only a directory can be the layer's root"),
        ([entry(".wh.")], "layer: .wh.: invalid whiteout name"),
        ([entry("d/.wh..")], "layer: d/.wh..: invalid whiteout name"),
        (
            [entry("f", data=b"1"), entry(".wh.f")],
            "layer: .wh.f: whiteout of a path the layer itself creates",
        ),
        (
            [entry("f", data=b"1", pax={"SCHILY.xattr.trusted.overlay.redirect": "/etc"})],
            "layer: f: xattr trusted.overlay.redirect is reserved for overlayfs",
        ),
        ([entry("vol", b"V")], "layer: vol: unsupported entry type b'V'"),
        (
            [entry("f", data=b"1"), entry("f/g", data=b"2")],
            "layer: f/g: parent f is not a directory",
        ),
        ([hardlink("l", "/")], "layer: l: hardlink to the layer's root"),
        ([entry("new\nline/../../x")], "layer: new\\nline/../../x: path escapes the layer's root"),
    ],
    ids=[
        "file-as-root",
        "symlink-as-root",
        "empty-whiteout",
        "dotdot-whiteout",
        "whiteout-own-file",
        "overlay-xattr",
        "unknown-type",
        "file-as-parent",
        "hardlink-root",
        "newline-in-name",
    ],
)
def test_malformed_entries_are_refused(
    entries: list[tuple[tarfile.TarInfo, bytes]], message: str, dest: Path
) -> None:
    assert refused(make_tar(entry("before", data=b"b"), *entries), dest) == message
