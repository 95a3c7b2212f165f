"""Local files as a tar request body, sent without copying large files through Python.

A body is a sequence of parts: bytes (tar headers, padding, small files) and
`FileRange`s, whose bytes the kernel moves from the file to the socket (sendfile).
Build contexts are mostly large files that did not change since the last build, so a
cached rebuild costs little more than reading the directory.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    import tarfile
    from collections.abc import Iterable, Iterator

_BLOCK = 512
_END = bytes(2 * _BLOCK)
# Below this a file is read into the body: one read costs less than a chunk of its own.
_INLINE_MAX = 64 << 10


class FileRange:
    """The first `size` bytes of the file at `path`, as a tar member's content."""

    __slots__ = ("path", "size")

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self.size = size


Part = bytes | FileRange


class ContextError(Exception):
    """A local file could not be read or changed while it was sent (the body is cut
    short: a tar member must have the size its header says)."""


def member_parts(tar: tarfile.TarFile, path: str, arcname: str) -> Iterator[Part]:
    """One file system entry (not its children) as a tar member, owned by root as the
    docker CLI sends build contexts. `tar` only names hard links to members already
    listed (gettarinfo); nothing is written to it."""
    import tarfile

    try:
        info = tar.gettarinfo(path, arcname=arcname)
    except OSError as err:
        raise ContextError(f"error checking context: {err}") from None
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    yield info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")
    if info.isreg() and info.size:
        if info.size <= _INLINE_MAX:
            yield read_exactly(path, info.size)
        else:
            yield FileRange(path, info.size)
        if info.size % _BLOCK:
            yield bytes(_BLOCK - info.size % _BLOCK)


def read_exactly(path: str, size: int) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(size)
    except OSError as err:
        raise ContextError(f"error checking context: {err}") from None
    if len(data) < size:
        raise ContextError(f"{path}: file changed as it was sent")
    return data


def bytes_member(name: str, data: bytes) -> Iterator[Part]:
    """A regular file made of `data` (a Dockerfile from stdin or inline)."""
    import tarfile

    info = tarfile.TarInfo(name)
    info.size = len(data)
    yield info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")
    yield data + bytes(-len(data) % _BLOCK)


def archive(members: Iterable[Part]) -> Iterator[Part]:
    """The members, then the two zero blocks that end a tar archive."""
    yield from members
    yield _END


def link_namer() -> tarfile.TarFile:
    """A TarFile that only remembers the inodes met, for member_parts' hard links."""
    import io
    import tarfile

    return tarfile.TarFile(fileobj=io.BytesIO(), mode="w", format=tarfile.PAX_FORMAT)


def context_files(directory: str, dockerfile: str) -> list[str]:
    """The paths of a build context as the docker CLI sends it (relative, sorted):
    `directory` less what its .dockerignore excludes, by Docker's rules."""
    from moorage.client.dockerignore import Matcher, read_patterns

    ignore = os.path.join(directory, ".dockerignore")
    patterns: list[str] = []
    if os.path.isfile(ignore):
        with open(ignore, encoding="utf-8") as f:
            patterns = read_patterns(f.read())
    if patterns:
        # The Dockerfile and .dockerignore always go (the docker CLI's
        # TrimBuildFilesFromExcludes); without patterns, everything does.
        patterns += [f"!{dockerfile}", "!.dockerignore"]
    return Matcher(patterns).files(directory)


def context_members(directory: str, paths: Iterable[str], dockerfile: str,
                    dockerfile_text: bytes | None) -> Iterator[Part]:
    """A tar of the context's `paths`, with `dockerfile_text` added under the name
    `dockerfile` when the Dockerfile is not in the directory."""
    links = None
    for rel in paths:
        links = links or link_namer()
        yield from member_parts(links, os.path.join(directory, rel), rel)
    if dockerfile_text is not None:
        yield from bytes_member(dockerfile, dockerfile_text)
    yield _END


def build_context(directory: str, dockerfile: str, dockerfile_text: bytes | None) -> Iterator[Part]:
    """A build context as the docker CLI sends it (`context_files`, `context_members`)."""
    return context_members(directory, context_files(directory, dockerfile), dockerfile,
                           dockerfile_text)
