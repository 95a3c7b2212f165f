"""A container's files, read through the archive endpoint (as `docker cp` reads them).

A directory's listing is the first level of the tar the engine sends for it; reading
stops after MAX_ENTRIES members so a huge tree cannot hold the dashboard.
"""

from __future__ import annotations

import io
import posixpath
from typing import Any

from aiohttp import web

from moorage.dashboard.keys import ENGINE
from moorage.dashboard.render import template

MAX_ENTRIES = 5000


def _path(request: web.Request) -> str:
    return posixpath.normpath("/" + request.query.get("path", "/").lstrip("/"))


def _listing(tar_bytes: bytes, path: str) -> tuple[list[dict[str, Any]], bool]:
    """The direct children of the archive's top directory; whether the list was cut."""
    import tarfile  # only when a page browses files

    entries: list[dict[str, Any]] = []
    seen = 0
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r|") as archive:
        for member in archive:
            seen += 1
            if seen > MAX_ENTRIES:
                return entries, True
            parts = member.name.strip("/").split("/")
            if len(parts) != 2:
                continue
            entries.append({"name": parts[1], "dir": member.isdir(), "size": member.size,
                            "link": member.linkname if member.issym() else "",
                            "path": posixpath.join(path, parts[1])})
    entries.sort(key=lambda e: (not e["dir"], e["name"]))
    return entries, False


@template("files.html")
async def browse(request: web.Request) -> dict[str, Any]:
    container = request.match_info["id"]
    path = _path(request)
    raw = await request.app[ENGINE].raw(f"/containers/{container}/archive", {"path": path})
    entries, cut = _listing(raw, path)
    return {"id": container, "path": path, "parent": posixpath.dirname(path),
            "entries": entries, "cut": cut}


async def download(request: web.Request) -> web.Response:
    container = request.match_info["id"]
    path = _path(request)
    raw = await request.app[ENGINE].raw(f"/containers/{container}/archive", {"path": path})
    name = (posixpath.basename(path) or "root").replace('"', "")
    return web.Response(body=raw, content_type="application/x-tar",
                        headers={"Content-Disposition": f'attachment; filename="{name}.tar"'})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/containers/{id}/files", browse)
    router.add_get("/containers/{id}/download", download)
