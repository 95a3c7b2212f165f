"""A PAX tar written straight to a file, its headers as dockerd writes them: moby's
pkg/archive FileInfoHeader over Go's archive/tar, which differs from Python's tarfile in
these.

- The mode field keeps the file-type bits (0100644, 040755, 0120777...): moby puts
  back what Go 1.9 stopped writing (fillGo18FileTypeBits). tarfile masks them off.
- devmajor and devminor are octal zeros for a file that is no device; tarfile leaves
  them NUL.
- The time is in whole seconds, in the header itself: a fractional time would make
  tarfile write a PAX record for every entry (callers give an int).

- A path too long for the name field goes to the ustar prefix field where Go's split
  (at the last "/" that leaves both parts short enough) fits it and nothing else needs
  PAX; tarfile writes a PAX record for it.
- A PAX extended header is named <dir>/PaxHeaders.0/<file>, its records sorted by key;
  tarfile names it ././@PaxHeader and writes the records in its own order.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
from dataclasses import dataclass, field
from typing import IO

_BLOCK = tarfile.BLOCKSIZE
# A file's bytes go to the tar in pieces this large (tarfile's default is 16 KiB).
_CHUNK = 1 << 20
# moby's fillGo18FileTypeBits: a hard link has the bits of the regular file it is.
_TYPE_BITS = {tarfile.REGTYPE: 0o100000, tarfile.AREGTYPE: 0o100000,
              tarfile.LNKTYPE: 0o100000, tarfile.SYMTYPE: 0o120000,
              tarfile.DIRTYPE: 0o040000, tarfile.CHRTYPE: 0o020000,
              tarfile.BLKTYPE: 0o060000, tarfile.FIFOTYPE: 0o010000}
_NO_DEVICE = b"0000000\0" * 2


def _go_split(path: bytes) -> tuple[bytes, bytes] | None:
    """Go's splitUSTARPath: (prefix, name) for a long ASCII path, split at the last "/"
    within the prefix field's reach; None where no split fits."""
    if len(path) <= 100 or not path.isascii():
        return None
    length = len(path)
    if length > 156:
        length = 156
    elif path.endswith(b"/"):
        length -= 1
    cut = path.rfind(b"/", 0, length)
    if cut <= 0 or not 0 < len(path) - cut - 1 <= 100 or cut > 155:
        return None
    return path[:cut], path[cut + 1:]


def _pax_records(data: bytes) -> list[tuple[bytes, bytes, bytes]]:
    """(key, value, the whole record) of each record of PAX data."""
    records = []
    while data:
        length = int(data.partition(b" ")[0])
        record, data = data[:length], data[length:]
        key, _, value = record.partition(b" ")[2][:-1].partition(b"=")
        records.append((key, value, record))
    return records


def _checksum(buf: bytearray, head: int) -> None:
    # The checksum counts its own field as eight spaces.
    checksum = sum(buf[head:head + 148]) + 256 + sum(buf[head + 156:head + _BLOCK])
    buf[head + 148:head + 155] = b"%06o\0" % checksum


def _as_go(buf: bytearray) -> bytearray:
    """tarfile's PAX extended header and main block (`buf`) as Go writes them: the path
    in the ustar prefix where it splits, else the records sorted under Go's name."""
    size = int(buf[124:136].strip(b" \0") or b"0", 8)
    records = _pax_records(bytes(buf[_BLOCK:_BLOCK + size]))
    main = bytearray(buf[-_BLOCK:])
    path = next((value for key, value, _ in records if key == b"path"), b"")
    split = _go_split(path) if [key for key, _, _ in records] == [b"path"] else None
    if split is not None:
        main[0:100] = split[1].ljust(100, b"\0")
        main[345:500] = split[0].ljust(155, b"\0")
        return main
    data = b"".join(record for _, _, record in sorted(records))
    name = path or main[0:100].split(b"\0", 1)[0]
    # Go: path.Join(path.Split(name) around "PaxHeaders.0"), its ASCII only, cut to fit.
    folder, file = posixpath.split(name)
    go_name = posixpath.normpath(posixpath.join(folder, b"PaxHeaders.0", file))
    go_name = bytes(c for c in go_name if 0 < c < 0x80)[:100].rstrip(b"/")
    head = bytearray(buf[:_BLOCK])
    head[0:100] = go_name.ljust(100, b"\0")
    _checksum(head, 0)
    padded = data + bytes(-len(data) % _BLOCK)
    return head + padded + main


def encode(member: tarfile.TarInfo, *, type_bits: bool = True) -> bytes:
    """`member`'s header blocks (PAX extended ones first, where tarfile needs them) with
    Go's mode and device fields; the file-type bits are those of `member.mode` (a
    stat's st_mode: a hard link has those of its file), else those of its type.
    `type_bits`: False for the headers moby makes by hand (whiteouts), whose mode is the
    permission bits only."""
    buf = bytearray(member.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
    if len(buf) > _BLOCK and buf[156:157] == tarfile.XHDTYPE:
        buf = _as_go(buf)
    head = len(buf) - _BLOCK
    kind = stat.S_IFMT(member.mode) or _TYPE_BITS.get(member.type, 0)
    mode = member.mode & 0o7777 | (kind if type_bits else 0)
    buf[head + 100:head + 108] = b"%07o\0" % mode
    if not buf[head + 329]:
        buf[head + 329:head + 345] = _NO_DEVICE
    _checksum(buf, head)
    return bytes(buf)


@dataclass(frozen=True, slots=True)
class Owners:
    """Names for uids and gids (a tree's /etc/passwd and /etc/group: dockerd's tar runs
    chrooted in the container's root, where Go's os/user reads them)."""

    users: dict[int, str] = field(default_factory=dict)
    groups: dict[int, str] = field(default_factory=dict)

    @classmethod
    def from_tables(cls, passwd: list[list[str]], group: list[list[str]]) -> Owners:
        """From the files' colon-separated fields; the first line of an id names it. Id
        0 is root where the files do not name it: dockerd loads the host's NSS modules
        before its chroot, and nss-systemd (Debian's default) makes up root."""
        def names(table: list[list[str]]) -> dict[int, str]:
            found: dict[int, str] = {}
            for fields in table:
                if fields[2].isdigit():
                    found.setdefault(int(fields[2]), fields[0])
            found.setdefault(0, "root")
            return found

        return cls(names(passwd), names(group))


class TarWriter:
    """Entries written straight to `out`: a file's data read in large pieces and handed
    on as they are (tarfile's stream copies it through its buffers), or sent by
    `out.sendfile(fd, size)` where it has one (a socket: the bytes stay in the kernel).
    `owners`: the names the headers give uids and gids (none without)."""

    def __init__(self, out: IO[bytes], owners: Owners | None = None) -> None:
        self.out = out
        self.owners = owners
        self.seen: dict[tuple[int, int], str] = {}

    def hardlink(self, name: str, info: os.stat_result) -> str | None:
        """The name of the entry already written for the file `info` (of another of its
        links): the entry `name` is then a link to it, as moby's tarAppender records a
        hard link. None for a file's first entry."""
        if info.st_nlink < 2:
            return None
        key = (info.st_dev, info.st_ino)
        earlier = self.seen.get(key)
        if earlier is None:
            self.seen[key] = name
        return earlier

    def addfile(self, member: tarfile.TarInfo, fd: int | None = None, *,
                type_bits: bool = True) -> None:
        """`member`, then `member.size` bytes of `fd` (open for reading; the caller
        keeps it)."""
        if self.owners is not None:
            member.uname = self.owners.users.get(member.uid, "")
            member.gname = self.owners.groups.get(member.gid, "")
        self.out.write(encode(member, type_bits=type_bits))
        if fd is None or not member.size:
            return
        sendfile = getattr(self.out, "sendfile", None)
        if sendfile is not None:  # zero-copy; it sends zeros for what a shrunk file lacks
            sendfile(fd, member.size)
        left = 0 if sendfile is not None else member.size
        while left:
            piece = os.read(fd, min(left, _CHUNK))
            if not piece:  # the file shrank while read: zeros keep the archive whole
                piece = bytes(min(left, _CHUNK))
            self.out.write(piece)
            left -= len(piece)
        if member.size % _BLOCK:
            self.out.write(bytes(_BLOCK - member.size % _BLOCK))

    def close(self) -> None:
        self.out.write(bytes(2 * _BLOCK))
