"""Blob upload sessions (distribution-spec "Pushing blobs"): monolithic, chunked, streamed.

A session is DIR/uploads/<uuid>/ holding ``data`` and ``repo``. Content is hashed
as it arrives; the hash state lives in memory, so after a restart (or for a digest
algorithm other than sha256) the file is hashed once more at the end. Chunks are
written from a worker thread so a slow disk never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from aiohttp import StreamReader

from moorage.registry.errors import RegistryError
from moorage.registry.names import Digest
from moorage.registry.storage import Storage

_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Chunks from the socket are gathered up to this size before one write+hash in a thread.
_WRITE_BATCH = 1 << 20


@dataclass
class _Session:
    hasher: Any = field(default_factory=hashlib.sha256)
    size: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def write_and_hash(f: BinaryIO, hasher: Any, data: bytes) -> None:
    f.write(data)
    hasher.update(data)


def _hash_file(path: Path, algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_WRITE_BATCH):
            hasher.update(chunk)
    return hasher.hexdigest()


class Uploads:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.base = storage.root / "uploads"
        self._sessions: dict[str, _Session] = {}

    def create(self, name: str) -> str:
        upload_id = str(uuid.uuid4())
        folder = self.base / upload_id
        folder.mkdir()
        (folder / "data").touch()
        self.storage.write_atomic(folder / "repo", name.encode())
        self._sessions[upload_id] = _Session()
        return upload_id

    def _folder(self, name: str, upload_id: str) -> Path:
        """The session's folder; BLOB_UPLOAD_UNKNOWN for another repository's or a bad id."""
        folder = self.base / upload_id
        try:
            if _UUID_RE.fullmatch(upload_id) and (folder / "repo").read_text() == name:
                return folder
        except FileNotFoundError:
            pass
        raise RegistryError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": upload_id})

    def size(self, name: str, upload_id: str) -> int:
        return (self._folder(name, upload_id) / "data").stat().st_size

    def _session(self, upload_id: str, data: Path) -> _Session:
        session = self._sessions.get(upload_id)
        if session is None or session.size != data.stat().st_size:
            # Another process wrote it, or we restarted: hash state is lost.
            session = self._sessions[upload_id] = _Session(size=data.stat().st_size)
            session.hasher = None
        return session

    async def append(self, name: str, upload_id: str, body: StreamReader,
                     start: int | None = None) -> int:
        """Add a chunk; ``start`` (from Content-Range) must equal the current size.

        distribution-spec "Pushing a blob in chunks": an out-of-order chunk gets 416.
        Returns the new size.
        """
        data_path = self._folder(name, upload_id) / "data"
        session = self._session(upload_id, data_path)
        async with session.lock:
            if start is not None and start != session.size:
                raise RegistryError("BLOB_UPLOAD_INVALID", status=416,
                                    detail={"expected_start": session.size, "start": start},
                                    headers={"Range": _range(session.size),
                                             "Location": location(name, upload_id)})
            hasher = session.hasher if session.hasher is not None else _Discard()
            with open(data_path, "ab") as f:
                batch = bytearray()
                async for chunk in body.iter_any():
                    batch += chunk
                    if len(batch) >= _WRITE_BATCH:
                        await asyncio.to_thread(write_and_hash, f, hasher, bytes(batch))
                        session.size += len(batch)
                        batch = bytearray()
                if batch:
                    await asyncio.to_thread(write_and_hash, f, hasher, bytes(batch))
                    session.size += len(batch)
            return session.size

    async def finish(self, name: str, upload_id: str, digest: Digest) -> None:
        """Verify the content against ``digest`` and commit it as a blob of ``name``.

        A mismatch is DIGEST_INVALID and the session stays open, so the client can
        still cancel it (distribution-spec "Closing an upload").
        """
        folder = self._folder(name, upload_id)
        data_path = folder / "data"
        session = self._session(upload_id, data_path)
        async with session.lock:
            if digest.algorithm == "sha256" and session.hasher is not None:
                actual = session.hasher.hexdigest()
            else:
                actual = await asyncio.to_thread(_hash_file, data_path, digest.algorithm)
            if actual != digest.hex:
                raise RegistryError("DIGEST_INVALID", detail={"digest": str(digest),
                                                              "actual": actual})
            await asyncio.to_thread(_sync_and_commit, self.storage, name, data_path, digest)
            await asyncio.to_thread(shutil.rmtree, folder, True)
            self._sessions.pop(upload_id, None)

    def cancel(self, name: str, upload_id: str) -> None:
        shutil.rmtree(self._folder(name, upload_id))
        self._sessions.pop(upload_id, None)

    def purge(self, older_than: float) -> int:
        """Remove sessions idle since ``older_than`` (epoch seconds); the collector calls it."""
        removed = 0
        for upload_id in os.listdir(self.base):
            folder = self.base / upload_id
            try:
                # A session being created may not have its data file yet: its folder's
                # mtime is then the one that counts.
                touched = max(p.stat().st_mtime for p in (folder, folder / "data")
                              if p.exists())
            except (ValueError, FileNotFoundError):
                continue  # finished or cancelled while we looked
            if touched < older_than:
                shutil.rmtree(self.base / upload_id, ignore_errors=True)
                self._sessions.pop(upload_id, None)
                removed += 1
        return removed


class _Discard:
    """Stands in for a lost hash state: finish() hashes the file instead."""

    def update(self, data: bytes) -> None:
        pass


def _sync_and_commit(storage: Storage, name: str, data_path: Path, digest: Digest) -> None:
    with open(data_path, "rb") as f:
        os.fsync(f.fileno())
    storage.commit_blob(name, data_path, digest)


def location(name: str, upload_id: str) -> str:
    return f"/v2/{name}/blobs/uploads/{upload_id}"


def _range(size: int) -> str:
    # The distribution registry reports an empty upload as "0-0" too.
    return f"0-{max(size - 1, 0)}"


def upload_headers(name: str, upload_id: str, size: int) -> dict[str, str]:
    """distribution-spec "Pushing a blob in chunks": where the next chunk goes, what is there."""
    return {"Location": location(name, upload_id), "Range": _range(size),
            "Docker-Upload-UUID": upload_id, "Content-Length": "0"}
