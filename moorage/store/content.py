"""The content-addressed blob store: <data-root>/content/blobs/sha256/<hex>.

A blob is written under <data-root>/tmp, hashed while it streams, fsynced, and
renamed into place only when its digest is known (and matches the expected one,
when there is one), so a visible blob is always complete and correct; a crash
leaves at most a file in tmp/, which the daemon deletes at start (DESIGN.md,
"State on disk"). Blobs are immutable: committing one that exists is a no-op.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from moorage.errors import InvalidParameter, NotFound
from moorage.fsutil import fsync_dir

_HEX = re.compile(r"[a-f0-9]{64}")
CHUNK = 1 << 20
# Names this store stages under tmp/; anything with it is a half-finished ingest.
TMP_PREFIX = "ingest-"


def hex_of(digest: str) -> str:
    """The hex part of a ``sha256:<hex>`` digest; InvalidParameter for anything else."""
    algorithm, _, encoded = digest.partition(":")
    if algorithm != "sha256" or not _HEX.fullmatch(encoded):
        raise InvalidParameter(f"unsupported or invalid digest {digest!r}")
    return encoded


@dataclass(frozen=True, slots=True)
class Committed:
    """A blob now in the store; ``created`` is False when it was there already."""

    digest: str
    size: int
    created: bool


class ContentStore:
    """Blobs under ``root``/blobs/sha256, staged in ``tmp_dir`` (same filesystem)."""

    def __init__(self, root: str, tmp_dir: str) -> None:
        self.blob_dir = os.path.join(root, "blobs", "sha256")
        self.tmp_dir = tmp_dir
        os.makedirs(self.blob_dir, mode=0o700, exist_ok=True)
        os.makedirs(tmp_dir, mode=0o700, exist_ok=True)

    def path(self, digest: str) -> str:
        return os.path.join(self.blob_dir, hex_of(digest))

    def exists(self, digest: str) -> bool:
        return os.path.exists(self.path(digest))

    def open(self, digest: str) -> BinaryIO:
        """The blob for reading. NotFound when it is not in the store."""
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def read(self, digest: str, limit: int = 16 << 20) -> bytes:
        """A small blob (a config, a manifest) in memory; refuses one above ``limit``."""
        with self.open(digest) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise InvalidParameter(f"blob {digest} is larger than {limit} bytes")
        return data

    def size(self, digest: str) -> int:
        return os.stat(self.path(digest)).st_size

    def ingest(self) -> Ingest:
        """A blob being written piece by piece (a download); commit or abort it."""
        return Ingest(self)

    def write(self, chunks: Iterable[bytes], expected: str | None = None) -> Committed:
        """Ingest ``chunks`` and commit them.

        With ``expected``, a mismatch raises InvalidParameter and nothing becomes
        visible. Idempotent: the same content commits to the same blob.
        """
        if expected is not None:
            hex_of(expected)
        with self.ingest() as ingest:
            for chunk in chunks:
                ingest.write(chunk)
            return ingest.commit(expected)

    def write_stream(self, stream: BinaryIO, expected: str | None = None) -> Committed:
        return self.write(iter(lambda: stream.read(CHUNK), b""), expected)

    def write_bytes(self, data: bytes, expected: str | None = None) -> Committed:
        return self.write([data], expected)

    def delete(self, digest: str) -> bool:
        """Remove a blob; False when it was not there (idempotent)."""
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:
            return False
        return True

    def walk(self) -> Iterator[str]:
        """Every committed blob's digest (files with other names are skipped)."""
        for name in sorted(os.listdir(self.blob_dir)):
            if _HEX.fullmatch(name):
                yield f"sha256:{name}"

    def strays(self) -> list[str]:
        """Paths in the blob directory that are not blobs (nothing should be)."""
        return [os.path.join(self.blob_dir, n) for n in sorted(os.listdir(self.blob_dir))
                if not _HEX.fullmatch(n)]

    def verify(self, digest: str) -> bool:
        """Whether the blob's bytes still hash to its name."""
        sha = hashlib.sha256()
        with self.open(digest) as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                sha.update(chunk)
        return f"sha256:{sha.hexdigest()}" == digest


class Ingest:
    """One blob in tmp/, hashed as it is written; invisible until ``commit``.

    A context manager: leaving it without a commit removes the temp file, so a
    failed download leaves nothing behind."""

    def __init__(self, store: ContentStore) -> None:
        self._store = store
        fd, self._tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=store.tmp_dir)
        self._file = os.fdopen(fd, "wb")
        self._sha = hashlib.sha256()
        self.size = 0

    def __enter__(self) -> Ingest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()

    def write(self, chunk: bytes | memoryview) -> None:
        self._sha.update(chunk)
        self._file.write(chunk)
        self.size += len(chunk)

    def digest(self) -> str:
        """The digest of what was written so far."""
        return f"sha256:{self._sha.hexdigest()}"

    def commit(self, expected: str | None = None) -> Committed:
        """fsync and rename into place. With ``expected``, a mismatch raises
        InvalidParameter and nothing becomes visible (the temp file goes)."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        digest = self.digest()
        if expected is not None and digest != expected:
            self.abort()
            raise InvalidParameter(
                f"content digest {digest} does not match the expected {expected}")
        target = self._store.path(digest)
        created = not os.path.exists(target)
        if created:
            os.rename(self._tmp, target)
            fsync_dir(self._store.blob_dir)
        self.abort()
        return Committed(digest, self.size, created)

    def abort(self) -> None:
        """Drop the temp file (idempotent; a no-op after a commit renamed it)."""
        self._file.close()
        try:
            os.unlink(self._tmp)
        except FileNotFoundError:
            pass
