"""A PAX tar written straight to a file, its headers as dockerd writes them: moby's
pkg/archive FileInfoHeader over Go's archive/tar, which differs from Python's tarfile in
three header fields.

- The mode field keeps the file-type bits (0100644, 040755, 0120777...): moby puts
  back what Go 1.9 stopped writing (fillGo18FileTypeBits). tarfile masks them off.
- devmajor and devminor are octal zeros for a file that is no device; tarfile leaves
  them NUL.
- The time is in whole seconds, in the header itself: a fractional time would make
  tarfile write a PAX record for every entry (callers give an int).

Long names still differ (Go splits a path into the ustar prefix where it fits, tarfile
writes a PAX record, named ././@PaxHeader where Go names it PaxHeaders.0/<name>).
"""

from __future__ import annotations

import os
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


def encode(member: tarfile.TarInfo, *, type_bits: bool = True) -> bytes:
    """`member`'s header blocks (PAX extended ones first, where tarfile needs them) with
    Go's mode and device fields; the file-type bits are those of `member.mode` (a
    stat's st_mode: a hard link has those of its file), else those of its type.
    `type_bits`: False for the headers moby makes by hand (whiteouts), whose mode is the
    permission bits only."""
    buf = bytearray(member.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
    head = len(buf) - _BLOCK
    kind = stat.S_IFMT(member.mode) or _TYPE_BITS.get(member.type, 0)
    mode = member.mode & 0o7777 | (kind if type_bits else 0)
    buf[head + 100:head + 108] = b"%07o\0" % mode
    if not buf[head + 329]:
        buf[head + 329:head + 345] = _NO_DEVICE
    # The checksum counts its own field as eight spaces.
    checksum = sum(buf[head:head + 148]) + 256 + sum(buf[head + 156:head + _BLOCK])
    buf[head + 148:head + 155] = b"%06o\0" % checksum
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
