"""The build context: the tar the client sent, unpacked into a private directory, and
the Dockerfile found in it (moby builder/remotecontext)."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

from moorage.errors import InvalidParameter
from moorage.fsutil import in_scope
from moorage.image.compression import decompressed


class BuildContext:
    def __init__(self, root: str) -> None:
        self.root = root

    @classmethod
    def unpack(cls, stream: BinaryIO, parent: str) -> BuildContext:
        """Unpack the (maybe compressed) tar ``stream``; entries that would land
        outside the directory are refused (tarfile's "tar" filter)."""
        root = tempfile.mkdtemp(prefix="context-", dir=parent)
        try:
            with tarfile.open(fileobj=_ChunkReader(decompressed(stream, "build context")),
                              mode="r|") as tar:
                tar.extractall(root, filter="tar")
        except (tarfile.TarError, OSError) as err:
            shutil.rmtree(root, ignore_errors=True)
            raise InvalidParameter(f"failed to read the build context: {err}") from None
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return cls(root)

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


class _ChunkReader:
    """A readable file over an iterator of byte chunks (what tarfile's stream mode needs)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data
