"""cp: files between a container and the local filesystem, as tar streams through
GET/PUT/HEAD /containers/{id}/archive (Engine API "Get an archive of a filesystem
resource in a container"), with docker's rules for naming the destination."""

from __future__ import annotations

import os
import sys

from moorage.cli.flags import BOOL, Spec, flag
from moorage.cli.session import CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from moorage.cli.flags import Options
    from moorage.cli.session import Session
    from moorage.client.api import Client

_GO_MODE_DIR = 1 << 31  # Go's fs.ModeDir, as the path-stat header encodes the mode


def split(arg: str) -> tuple[str | None, str]:
    """docker's splitCpArg: an absolute or ./-relative path is local even with a colon."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return None, arg
    container, _, path = arg.partition(":")
    return container, path


class _ChunkReader:
    """A file-like view of an iterator of byte chunks, for tarfile's stream mode."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._buf = chunks, b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buf) < size:
            piece = next(self._chunks, b"")
            if not piece:
                break
            self._buf += piece
        cut = len(self._buf) if size < 0 else size
        data, self._buf = self._buf[:cut], self._buf[cut:]
        return data


def _path_stat(client: Client, container: str, path: str) -> dict | None:
    """The container's X-Docker-Container-Path-Stat of `path`; None when it does not exist."""
    import base64

    from moorage import json_codec
    from moorage.client.errors import APIError

    try:
        headers = client.head(f"/containers/{container}/archive", {"path": path})
    except APIError as err:
        if err.status == 404 and "page not found" not in err.message:
            return None
        raise
    found = json_codec.loads(base64.b64decode(headers.get("x-docker-container-path-stat", "")
                                              or b"e30="))
    return found if isinstance(found, dict) else {}


def _from_container(client: Client, container: str, src: str, dst: str,
                    follow: bool) -> int:
    import tarfile

    if follow:  # -L: copy what a symlink names, under the link's own name
        found = _path_stat(client, container, src)
        if found and found.get("linkTarget"):
            src_name = os.path.basename(src.rstrip("/"))
            src = found["linkTarget"]
            if dst != "-" and os.path.isdir(dst):
                dst = os.path.join(dst, src_name)
    chunks = client.stream_raw("GET", f"/containers/{container}/archive", {"path": src})
    if dst == "-":
        for data in chunks:
            sys.stdout.buffer.write(data)
        return 0
    if os.path.isdir(dst):
        target, rename = dst, None
    elif dst.endswith("/"):
        raise CommandError(f"destination directory {dst} does not exist")
    else:  # a new name: the archive's top entry takes the destination's base name
        target, rename = os.path.dirname(os.path.abspath(dst)), os.path.basename(dst)
    with tarfile.open(fileobj=_ChunkReader(chunks), mode="r|") as tar:  # type: ignore[call-overload]
        top: str | None = None
        for member in tar:
            top = top or member.name.split("/", 1)[0]
            if rename:
                member.name = rename + member.name[len(top):]
            tar.extract(member, target, filter="tar")
    return 0


def _is_dir_in(client: Client, container: str, path: str) -> bool | None:
    """Whether `path` is a directory in the container; None when it does not exist."""
    found = _path_stat(client, container, path)
    return None if found is None else bool(found.get("mode", 0) & _GO_MODE_DIR)


def _tar_chunks(src: str, arcname: str, follow: bool) -> Iterator[bytes]:
    """`src` as a tar stream, produced by a thread into a pipe so nothing is held whole."""
    import tarfile
    import threading

    read_end, write_end = os.pipe()

    def produce() -> None:
        with os.fdopen(write_end, "wb") as out, tarfile.open(fileobj=out, mode="w|",
                                                              dereference=follow) as tar:
            tar.add(os.path.realpath(src) if follow else src, arcname=arcname)

    threading.Thread(target=produce, daemon=True).start()
    with os.fdopen(read_end, "rb") as source:
        while data := source.read(1 << 20):
            yield data


def _to_container(client: Client, src: str, container: str, dst: str, follow: bool,
                  archive: bool) -> int:
    if src == "-":  # stdin is already a tar stream for the destination directory
        chunks: Iterator[bytes] = iter(lambda: sys.stdin.buffer.read(1 << 20), b"")
        target = dst
    else:
        if not os.path.lexists(src):
            raise CommandError(f"lstat {os.path.abspath(src)}: no such file or directory")
        is_dir = _is_dir_in(client, container, dst)
        if is_dir or dst.endswith("/"):
            target, name = dst, os.path.basename(os.path.normpath(src))
        else:
            target, name = os.path.dirname(dst.rstrip("/")) or "/", os.path.basename(dst)
        chunks = _tar_chunks(src, name, follow)
    params = {"path": target, "noOverwriteDirNonDir": True}
    if archive:  # -a: the files take the container user's uid/gid
        params["copyUIDGID"] = True
    client.call("PUT", f"/containers/{container}/archive", params, chunks=chunks,
                headers={"Content-Type": "application/x-tar"})
    return 0


def cp(session: Session, opts: Options, args: list[str]) -> int:
    (src_container, src), (dst_container, dst) = split(args[0]), split(args[1])
    if src_container and dst_container:
        raise CommandError("copying between containers is not supported")
    if src_container:
        return _from_container(session.client, src_container, src, dst, opts.follow_link)
    if dst_container:
        return _to_container(session.client, src, dst_container, dst, opts.follow_link,
                             opts.archive)
    raise CommandError("must specify at least one container source")


SPECS = {
    "cp": Spec("[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tmoor cp [OPTIONS] SRC_PATH|- "
               "CONTAINER:DEST_PATH", cp, (
                   flag("a|archive", BOOL, "Archive mode (copy all uid/gid information)"),
                   flag("L|follow-link", BOOL, "Always follow symbol link in SRC_PATH"),
                   flag("q|quiet", BOOL, "Suppress progress output during copy. Progress output "
                                         "is automatically suppressed if no terminal is "
                                         "attached")),
               min_args=2, max_args=2),
}
