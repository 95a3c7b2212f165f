"""A build sent to moord with only the context's changed files: moord keeps a copy of
each client context between builds (its /moorage/build API, see
docs/architecture.md "Kept build contexts"), as BuildKit's filesync does. A daemon
without that API (dockerd, an older moord) gets the whole context as a tar on
POST /build, as does a build whose kept copy another build changed meanwhile."""

from __future__ import annotations

import os
import stat

from moorage import json_codec
from moorage.client.errors import APIError
from moorage.client.tarbody import build_context, context_files, context_members

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from moorage.client.api import Client
    from moorage.client.tarbody import Part


def context_key(directory: str) -> str:
    """Names the context among the daemon's kept copies (BuildKit's shared key: the
    client's host and the directory)."""
    return f"{os.uname().nodename}:{os.path.realpath(directory)}"


def _identity(path: str) -> list[Any] | None:
    """What tells a changed entry from an unchanged one, as BuildKit's stat-based diff
    (owners are left out: a context's members are sent owned by root). None for what
    is sent every time: hard-linked files (their tar members depend on each other) and
    special files."""
    st = os.lstat(path)
    if stat.S_ISREG(st.st_mode):
        if st.st_nlink > 1:
            return None
        return [st.st_mode, st.st_size, st.st_mtime_ns, ""]
    if stat.S_ISDIR(st.st_mode):
        return [st.st_mode, 0, st.st_mtime_ns, ""]
    if stat.S_ISLNK(st.st_mode):
        return [st.st_mode, 0, st.st_mtime_ns, os.readlink(path)]
    return None


def build(client: Client, params: dict[str, Any], directory: str, dockerfile: str,
          dockerfile_text: bytes | None, sent: Callable[[int], None] | None = None,
          ) -> Iterator[dict[str, Any]]:
    """The daemon's messages for a build of `directory`; `sent` is told how many bytes
    of context went once they have."""
    paths = context_files(directory, dockerfile)
    try:
        entries: list[list[Any]] = [[p, _identity(os.path.join(directory, p))]
                                    for p in paths]
    except OSError:
        entries = []  # the tar upload reports it in the docker CLI's words
    if dockerfile_text is not None:
        entries.append([dockerfile, None])
    size = [0]
    if entries:
        key = context_key(directory)
        messages = _kept_build(client, params, key, entries, directory, dockerfile,
                               dockerfile_text, size)
        try:
            first = next(messages, None)
        except APIError as err:
            # 404: no such API; 409: the kept copy changed under this transfer.
            if err.status not in (404, 409):
                raise
        else:
            yield from _told(first, messages, size[0], sent)
            return
    body = _counted(build_context(directory, dockerfile, dockerfile_text), size)
    messages = client.stream_json("POST", "/build", params, chunks=body,
                                  headers={"Content-Type": "application/x-tar"})
    yield from _told(next(messages, None), messages, size[0], sent)


def _told(first: dict[str, Any] | None, rest: Iterator[dict[str, Any]], size: int,
          sent: Callable[[int], None] | None) -> Iterator[dict[str, Any]]:
    """The messages, once `sent` is told the context's size (the daemon answers when
    it has the context: its first message comes after)."""
    if sent is not None:
        sent(size)
    if first is not None:
        yield first
        yield from rest


def _kept_build(client: Client, params: dict[str, Any], key: str, entries: list[list[Any]],
                directory: str, dockerfile: str, dockerfile_text: bytes | None,
                size: list[int]) -> Iterator[dict[str, Any]]:
    needed = set(client.call("POST", "/moorage/build/context",
                             body={"key": key, "entries": entries})["Needed"])
    paths = [p for p, _ in entries if p in needed]
    manifest = json_codec.dumps({"key": key, "entries": entries, "sent": paths},
                                compact=True).encode("utf-8", "surrogateescape")
    members = context_members(
        directory, [p for p in paths if dockerfile_text is None or p != dockerfile],
        dockerfile, dockerfile_text if dockerfile in needed else None)
    body = _counted(members, size, len(manifest).to_bytes(8, "big") + manifest)
    yield from client.stream_json("POST", "/moorage/build", params, chunks=body,
                                  headers={"Content-Type": "application/octet-stream"})


def _counted(parts: Iterator[Part], size: list[int], head: bytes = b"") -> Iterator[Part]:
    """`parts` after `head`, their size added up in `size`."""
    if head:
        yield head
    for part in parts:
        size[0] += len(part) if isinstance(part, bytes) else part.size
        yield part
