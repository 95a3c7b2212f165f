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
    def __init__(self, root: str, digests: dict[str, str] | None = None) -> None:
        self.root = root
        # host path → SHA-256 of the file's content, as received
        self.digests = digests or {}

    @classmethod
    def unpack(cls, stream: BinaryIO, parent: str) -> BuildContext:
        """Unpack the (maybe compressed) tar ``stream``; entries that would land
        outside the directory are refused (tarfile's "tar" filter)."""
        root = tempfile.mkdtemp(prefix="context-", dir=parent)
        try:
            with _HashingTar.open(fileobj=_ChunkReader(decompressed(stream, "build context")),
                                  mode="r|") as tar:
                tar.extractall(root, filter="tar")
        except (tarfile.TarError, OSError) as err:
            shutil.rmtree(root, ignore_errors=True)
            raise InvalidParameter(f"failed to read the build context: {err}") from None
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return cls(root, tar.digests)

    def remove(self) -> None:
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
        assert source is not None
        source.seek(tarinfo.offset_data)
        digest = hashlib.sha256()
        remaining = tarinfo.size
        with open(targetpath, "wb") as target:
            while remaining:
                chunk = source.read(min(remaining, 1 << 20))
                if not chunk:
                    raise tarfile.ReadError("unexpected end of data")
                digest.update(chunk)
                target.write(chunk)
                remaining -= len(chunk)
        self.digests[os.path.normpath(targetpath)] = digest.hexdigest()


class _ChunkReader:
    """A readable file over an iterator of byte chunks (what tarfile's stream mode needs).
    A read copies only what it returns: tarfile reads headers and blocks far smaller
    than the chunks the socket gives."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""
        self._offset = 0

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) - self._offset < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer = self._buffer[self._offset:] + chunk
            self._offset = 0
        end = len(self._buffer) if size < 0 else self._offset + size
        data = self._buffer[self._offset:end]
        self._offset += len(data)
        return data
