"""The build context: the tar the client sent, unpacked into a private directory, and
the Dockerfile found in it (moby builder/remotecontext). Each regular file's content
digest is taken as its bytes arrive, so a COPY's cache key needs no second read."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from typing import Any, BinaryIO

from moorage.errors import InvalidParameter
from moorage.fsutil import in_scope
from moorage.image.compression import decompressed


class BuildContext:
    def __init__(self, root: str, digests: dict[str, str] | None = None, *,
                 kept: bool = False) -> None:
        self.root = root
        # host path → SHA-256 of the file's content, as received
        self.digests = digests or {}
        self.kept = kept  # a kept copy (kept.py), which outlives the build

    @classmethod
    def unpack(cls, stream: BinaryIO, parent: str) -> BuildContext:
        """Unpack the (maybe compressed) tar ``stream``; entries that would land
        outside the directory are refused (tarfile's "tar" filter)."""
        root = tempfile.mkdtemp(prefix="context-", dir=parent)
        try:
            # "r:" over a reader that only seeks forward: tarfile's stream mode ("r|")
            # would copy every byte twice more through its own buffer.
            with _HashingTar.open(fileobj=_ChunkReader(decompressed(stream, "build context")),
                                  mode="r:") as tar:
                tar.extractall(root, filter="tar")
        except (tarfile.TarError, OSError) as err:
            shutil.rmtree(root, ignore_errors=True)
            raise InvalidParameter(f"failed to read the build context: {err}") from None
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return cls(root, tar.digests)

    def remove(self) -> None:
        if not self.kept:
            shutil.rmtree(self.root, ignore_errors=True)

    def dockerfile(self, name: str) -> str:
        """The Dockerfile's text; moby's error when it is not in the context."""
        path = self.resolve(name or "Dockerfile")
        if not os.path.isfile(path):
            if not name or name == "Dockerfile":
                lower = self.resolve("dockerfile")
                if os.path.isfile(lower):
                    path = lower
            if not os.path.isfile(path):
                raise InvalidParameter(
                    f"Cannot locate specified Dockerfile: {name or 'Dockerfile'}")
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()

    def resolve(self, path: str) -> str:
        """``path`` inside the context, symlinks followed but never out of it."""
        return in_scope(self.root, path.replace("\\", "/"))


def unpack_members(chunks: Iterator[bytes], root: str, names: set[str]) -> dict[str, str]:
    """Unpack the members of the tar in ``chunks`` that ``names`` holds into ``root``,
    as ``BuildContext.unpack`` does, reading past the others; their content digests."""
    try:
        with _HashingTar.open(fileobj=_ChunkReader(chunks), mode="r:") as tar:
            tar.extractall(root, members=(m for m in tar if m.name in names),
                           filter="tar")
    except tarfile.TarError as err:
        raise InvalidParameter(f"failed to read the build context: {err}") from None
    return tar.digests


class _HashingTar(tarfile.TarFile):
    """Extraction that digests each regular file while writing it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.digests: dict[str, str] = {}

    def makefile(self, tarinfo: tarfile.TarInfo, targetpath: str) -> None:
        if tarinfo.sparse is not None:
            super().makefile(tarinfo, targetpath)
            return
        source = self.fileobj
        assert isinstance(source, _ChunkReader)
        source.seek(tarinfo.offset_data)
        digest = hashlib.sha256()
        remaining = tarinfo.size
        with open(targetpath, "wb") as target:
            while remaining:
                chunk = source.read1(remaining)
                if not chunk:
                    raise tarfile.ReadError("unexpected end of data")
                digest.update(chunk)
                target.write(chunk)
                remaining -= len(chunk)
        self.digests[os.path.normpath(targetpath)] = digest.hexdigest()


    def makelink(self, tarinfo: tarfile.TarInfo, targetpath: str) -> None:
        super().makelink(tarinfo, targetpath)
        if tarinfo.issym():
            # tarfile leaves a link's own times at now; moby's archive sets them (LUtimesNano),
            # and a COPY of the link keeps them: the same context makes the same layer.
            os.utime(targetpath, (tarinfo.mtime, tarinfo.mtime), follow_symlinks=False)


class _ChunkReader:
    """A readable file over an iterator of byte chunks, which seeks forward only (all a
    tar read from start to end needs). A read copies only what it returns: tarfile
    reads headers far smaller than the chunks the socket gives."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""
        self._offset = 0
        self._position = 0  # of the buffer's start in the stream

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) - self._offset < size:
            if not self._more():
                break
        end = len(self._buffer) if size < 0 else self._offset + size
        data = self._buffer[self._offset:end]
        self._offset += len(data)
        return data

    def read1(self, size: int) -> bytes:
        """At most ``size`` bytes, no more than one chunk: file data passes uncopied."""
        if self._offset == len(self._buffer) and not self._more():
            return b""
        if self._offset == 0 and len(self._buffer) <= size:
            data, self._offset = self._buffer, len(self._buffer)
            return data
        return self.read(min(size, len(self._buffer) - self._offset))

    def _more(self) -> bool:
        chunk = next(self._chunks, None)
        if chunk is None:
            return False
        self._position += self._offset
        self._buffer = self._buffer[self._offset:] + chunk if self._offset < len(
            self._buffer) else chunk
        self._offset = 0
        return True

    def tell(self) -> int:
        return self._position + self._offset

    def seek(self, position: int, whence: int = 0) -> int:
        if whence != 0 or position < self.tell():
            raise OSError("the build context can only be read forward")
        while position > self.tell():
            if not self.read1(position - self.tell()):
                break
        return self.tell()
