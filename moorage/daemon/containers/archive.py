"""docker cp's endpoints: stat, get and put an archive of a path in a container.

A running container is reached through /proc/<pid>/root, its own view with its
volumes; a stopped one through its rootfs, mounted for the copy under the container's
lock (a start waits), with a path under a volume or bind taken from that mount's
source. Either way treecopy resolves every path inside that root.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import queue
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import IO, Any

from moorage.daemon.containers import events as container_events
from moorage.daemon.containers import setup, tarstream, treecopy
from moorage.daemon.containers.context import Context
from moorage.errors import InvalidParameter, NotFound
from moorage.model.records import ContainerRecord

# The body's chunks go to the extracting thread in batches of about this many bytes
# (a few hundred hand-overs for 200 MB rather than one per 32 KiB HTTP chunk), at most
# _QUEUE_BATCHES ahead of it.
_BATCH_BYTES = 1 << 20
_QUEUE_BATCHES = 8
# Chunks of a tar made for the client (docker cp out, export) waiting to be sent.
_QUEUE_CHUNKS = 16


_OCTAL = re.compile(r"\\([0-7]{3})")  # mountinfo's escapes of space, tab, newline, backslash


def _check_path(path: str) -> None:
    if not path:
        raise InvalidParameter("bad parameter: pathcannot be empty")  # dockerd's words


@asynccontextmanager
async def _root(ctx: Context, record: ContainerRecord, path: str
                ) -> AsyncIterator[tuple[int, str, bool]]:
    """(an fd of the root to resolve `path` in, the path inside it, whether it is a
    mount's)."""
    if record.state.running and record.state.pid:
        fd = os.open(f"/proc/{record.state.pid}/root", os.O_PATH | os.O_DIRECTORY
                     | os.O_CLOEXEC)
        try:
            clean = treecopy.clean(path)
            yield fd, path, any(_under(clean, m.destination) for m in record.mounts)
        finally:
            os.close(fd)
        return
    async with _rootfs(ctx, record) as rootfs:
        source, inner = rootfs, path
        clean = treecopy.clean(path)
        mounts = sorted((m for m in record.mounts if _under(clean, m.destination)),
                        key=lambda m: len(m.destination))
        if mounts:
            source = mounts[-1].source
            rest = posixpath.relpath(clean, mounts[-1].destination)
            inner = "/" + ("" if rest == "." else rest) + \
                ("/." if path.endswith("/.") else "/" if path.endswith("/") else "")
        fd = os.open(source, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            yield fd, inner, bool(mounts)
        finally:
            os.close(fd)


@asynccontextmanager
async def _rootfs(ctx: Context, record: ContainerRecord) -> AsyncIterator[str]:
    """The container's root filesystem, mounted: a stopped container's for the time of
    the copy, under its lock (a start waits)."""
    directory = ctx.paths.dir(record.id)
    if record.state.running:
        yield os.path.join(directory, "rootfs")
        return
    async with ctx.states.lock(record.id):
        mounted = await asyncio.to_thread(os.path.ismount, os.path.join(directory, "rootfs"))
        rootfs = await asyncio.to_thread(setup.mount_rootfs, directory,
                                         ctx.images.prepare_rootfs(record.id, record.image))
        try:
            yield rootfs
        finally:
            if not mounted:
                await asyncio.to_thread(setup.unmount_rootfs, directory)


async def _hand_over(chunks: queue.Queue[tarstream.Item], piece: tarstream.Item,
                     reader: asyncio.Future) -> bool:
    """Queue `piece` for the extracting thread; False once it has stopped reading."""
    try:
        chunks.put_nowait(piece)
        return True
    except queue.Full:
        pass

    def wait_for_room() -> bool:
        while not reader.done():
            try:
                chunks.put(piece, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    return await asyncio.to_thread(wait_for_room)


def _under(path: str, destination: str) -> bool:
    return path == destination or path.startswith(destination.rstrip("/") + "/")


def _not_found(ref: str, path: str) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {ref}")


async def _blocking(ref: str, path: str, call: Callable[..., Any], *args: Any,
                    **kwargs: Any) -> Any:
    try:
        return await asyncio.to_thread(call, *args, **kwargs)
    except (treecopy.Missing, FileNotFoundError, NotADirectoryError):
        raise _not_found(ref, path) from None


async def path_stat(ctx: Context, ref: str, path: str) -> dict:
    _check_path(path)
    record = ctx.registry.get(ref)
    async with _root(ctx, record, path) as (root, inner, _):
        return await _blocking(ref, path, treecopy.path_stat, root, inner)  # type: ignore[no-any-return]


async def get_archive(ctx: Context, ref: str, path: str) -> tuple[dict, TarStream]:
    """The path's stat and the tar of it, made as it is sent."""
    _check_path(path)
    record = ctx.registry.get(ref)
    opened = _root(ctx, record, path)
    root, inner, _ = await opened.__aenter__()
    try:
        found = await _blocking(ref, path, treecopy.path_stat, root, inner)
    except BaseException:
        await opened.__aexit__(None, None, None)
        raise
    container_events.publish(ctx, record, "archive-path")
    pid = record.state.pid if record.state.running else 0
    volumes = {m.destination for m in record.mounts}
    return found, TarStream(lambda out: treecopy.write_archive(
        root, inner, out, _runtime_mounts(pid, volumes)), opened)


def _runtime_mounts(pid: int, volumes: set[str]) -> frozenset[str]:
    """What the runtime mounted in a running container (proc, sys, dev…): dockerd's
    archive is of the container's files and volumes, never of those, which show as the
    empty directories they are in the image (their files are not files: sendfile of
    many a /proc file fails)."""
    if not pid:
        return frozenset()
    try:
        with open(f"/proc/{pid}/mountinfo", encoding="utf-8") as mountinfo:
            points = {_OCTAL.sub(lambda m: chr(int(m.group(1), 8)), line.split()[4])
                      for line in mountinfo}
    except (FileNotFoundError, ProcessLookupError):
        return frozenset()  # it has exited, and its mounts went with it
    return frozenset(points - {"/"} - volumes)


async def export(ctx: Context, ref: str) -> TarStream:
    """The tar of the container's root filesystem, without its volumes."""
    record = ctx.registry.get(ref)
    opened = _rootfs(ctx, record)
    rootfs = await opened.__aenter__()
    container_events.publish(ctx, record, "export")

    def write(out: IO[bytes]) -> None:
        fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            treecopy.write_tree(fd, out)
        finally:
            os.close(fd)

    return TarStream(write, opened)


class TarStream:
    """What `write` makes in a thread, as chunks. aclose() stops it and leaves `opened`
    (the container's root), whether or not the chunks were ever read."""

    def __init__(self, write: Callable[[IO[bytes]], None],
                 opened: contextlib.AbstractAsyncContextManager) -> None:
        self.write, self.opened = write, opened
        self.out: queue.Queue[bytes | None] = queue.Queue(_QUEUE_CHUNKS)
        self.producer: asyncio.Future | None = None
        self.closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        def produce() -> None:
            sink = treecopy.ChunkSink(self.out)
            try:
                self.write(sink)  # type: ignore[arg-type]
                sink.close()
            finally:
                self.out.put(None)

        self.producer = asyncio.ensure_future(asyncio.to_thread(produce))
        while (piece := await asyncio.to_thread(self.out.get)) is not None:
            yield piece
        await self.producer

    async def write_to(self, body: IO[bytes]) -> None:
        """The tar written by a worker thread into `body` rather than read as chunks;
        a body with sendfile(fd, size) gets the files' bytes that way."""
        self.producer = asyncio.ensure_future(asyncio.to_thread(self.write, body))
        await self.producer

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        producer = self.producer
        while producer is not None and not producer.done():  # the client left
            await asyncio.to_thread(_drain, self.out)
        await self.opened.__aexit__(None, None, None)


def _extract_all(root: int, inner: str, take: Callable[[], tarstream.Item],
                 **options: Any) -> None:
    treecopy.extract(root, inner, tarstream.Source(take), **options)
    while take() is not None:  # what a client sends after the tar's end
        pass


async def _extract_queued(ref: str, path: str, root: int, inner: str,
                          body: AsyncIterator[bytes], **options: Any) -> None:
    """The body read on the loop, handed to the extracting thread in batches."""
    chunks: queue.Queue[tarstream.Item] = queue.Queue(_QUEUE_BATCHES)
    extractor = asyncio.ensure_future(_blocking(
        ref, path, treecopy.extract, root, inner, tarstream.QueueSource(chunks), **options))
    batch: list[bytes] = []
    size = 0
    try:
        async for piece in body:
            batch.append(piece)
            size += len(piece)
            if size >= _BATCH_BYTES:
                if not await _hand_over(chunks, batch, extractor):
                    break
                batch, size = [], 0
    finally:
        if batch:
            await _hand_over(chunks, batch, extractor)
        await _hand_over(chunks, None, extractor)
    await extractor


def _drain(out: queue.Queue[bytes | None]) -> None:
    with contextlib.suppress(queue.Empty):
        out.get(timeout=0.05)


async def put_archive(ctx: Context, ref: str, path: str, body: AsyncIterator[bytes], *,
                      direct: Callable[[], tarstream.Item] | None,
                      no_overwrite_dir_non_dir: bool, copy_uid_gid: bool) -> None:
    """Unpack the tar `body` into the directory `path`; `direct`, where given, reads the
    same body in the extracting thread itself (blocking; None at its end), and then
    `body` is not read."""
    _check_path(path)
    record = ctx.registry.get(ref)
    async with _root(ctx, record, path) as (root, inner, in_mount):
        if record.host_config.readonly_rootfs and not in_mount:
            raise InvalidParameter("container rootfs is marked read-only")
        owner = None
        if copy_uid_gid:
            rootfs = f"/proc/{record.state.pid}/root" if record.state.running \
                else os.path.join(ctx.paths.dir(record.id), "rootfs")
            uid, gid, _ = await asyncio.to_thread(setup.resolve_user, rootfs,
                                                  record.config.user, ())
            owner = (uid, gid)
        if direct is not None:
            await _blocking(ref, path, _extract_all, root, inner, direct,
                            no_overwrite_dir_non_dir=no_overwrite_dir_non_dir, owner=owner)
        else:
            await _extract_queued(ref, path, root, inner, body,
                                  no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
                                  owner=owner)
    container_events.publish(ctx, record, "extract-to-dir")
