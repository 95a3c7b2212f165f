"""docker cp's tar reader: what tarfile writes (ustar, GNU, PAX, gzip) comes out whole,
and names leaving the destination are refused."""

from __future__ import annotations

import io
import os
import queue
import tarfile
from pathlib import Path

import pytest

from moorage.daemon.containers import tarstream, treecopy
from moorage.errors import InvalidParameter

LONG = "l" * 120 + "/" + "n" * 150


def _archive(fmt: int, compression: str = "") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=f"w:{compression}", format=fmt) as tar:
        for name, kind, data in (("d", tarfile.DIRTYPE, b""), ("d/f", tarfile.REGTYPE, b"x" * 1000),
                                 (LONG, tarfile.REGTYPE, b"long\n"),
                                 ("d/ln", tarfile.SYMTYPE, b""), ("d/hard", tarfile.LNKTYPE, b""),
                                 ("d/fifo", tarfile.FIFOTYPE, b""),
                                 ("d/é-unicode", tarfile.REGTYPE, b"u")):
            info = tarfile.TarInfo(name)
            info.type, info.size, info.mode, info.mtime = kind, len(data), 0o640, 1_700_000_000
            info.uid = info.gid = 1234
            if kind == tarfile.SYMTYPE:
                info.linkname = "f" * 120
            if kind == tarfile.LNKTYPE:
                info.linkname = "d/f"
            if kind == tarfile.DIRTYPE:
                info.mode = 0o750
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _extract(data: bytes, dest: Path, piece: int = 700) -> None:
    chunks: queue.Queue[bytes | None] = queue.Queue()
    for start in range(0, len(data), piece):  # pieces that split headers and data
        chunks.put(data[start:start + piece])
    chunks.put(None)
    root = os.open(dest, os.O_PATH | os.O_DIRECTORY)
    try:
        treecopy.extract(root, "/", tarstream.QueueSource(chunks), no_overwrite_dir_non_dir=True,
                         owner=None)
    finally:
        os.close(root)


@pytest.mark.parametrize(("fmt", "compression"), [
    (tarfile.GNU_FORMAT, ""), (tarfile.PAX_FORMAT, ""), (tarfile.PAX_FORMAT, "gz")])
def test_formats(tmp_path: Path, fmt: int, compression: str) -> None:
    _extract(_archive(fmt, compression), tmp_path)
    assert (tmp_path / "d" / "f").read_bytes() == b"x" * 1000
    assert (tmp_path / LONG).read_bytes() == b"long\n"
    assert os.readlink(tmp_path / "d" / "ln") == "f" * 120
    assert os.stat(tmp_path / "d" / "hard").st_ino == os.stat(tmp_path / "d" / "f").st_ino
    assert (tmp_path / "d" / "é-unicode").read_bytes() == b"u"
    info = os.stat(tmp_path / "d" / "f")
    assert (info.st_mode & 0o7777, info.st_uid, int(info.st_mtime)) == \
        (0o640, 1234, 1_700_000_000)
    assert os.stat(tmp_path / "d").st_mode & 0o7777 == 0o750


def test_refused_names_write_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    for bad in ("../evil", "/abs", "a/../../evil"):
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tar:
            info = tarfile.TarInfo(bad)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"!"))
        with pytest.raises(InvalidParameter, match="refusing archive entry"):
            _extract(out.getvalue(), dest)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["dest"]


def test_a_torn_archive_is_an_error(tmp_path: Path) -> None:
    data = _archive(tarfile.PAX_FORMAT)
    with pytest.raises(InvalidParameter):
        _extract(data[:1500], tmp_path)
    with pytest.raises(InvalidParameter, match="invalid tar header"):
        _extract(b"not a tar" + bytes(503), tmp_path)


def test_ustar_prefix(tmp_path: Path) -> None:
    """Go's archive/tar (the docker CLI) splits a long path into prefix and name."""
    name = "p" * 120 + "/" + "n" * 90
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = 2
        tar.addfile(info, io.BytesIO(b"ok"))
    _extract(out.getvalue(), tmp_path)
    assert (tmp_path / name).read_bytes() == b"ok"
