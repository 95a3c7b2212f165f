"""POST /commit (Engine API "ImageCommit") and GET /containers/{name}/changes
("ContainerChanges")."""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from moorage.api import versions
from moorage.api.server import add_route, json_response, query_bool, read_json
from moorage.api.wire import decode, encode
from moorage.image.diff import Change
from moorage.model.config import ContainerConfig


class CommitBackend(Protocol):
    async def container_changes(self, ref: str) -> list[Change]: ...

    async def container_commit(self, ref: str, *, repo: str, tag: str, comment: str,
                               author: str, pause: bool, changes: list[str],
                               config: dict[str, Any] | None) -> str: ...


def add_routes(app: web.Application, backend: CommitBackend) -> None:
    async def post_commit(request: web.Request) -> web.Response:
        body = await read_json(request, required=False)
        config = encode(decode(ContainerConfig, body, struct="container.Config")) \
            if body else None
        # Before API 1.13 a commit did not pause unless asked.
        pause = query_bool(request, "pause", versions.at_least(request["api_version"], "1.13"))
        image_id = await backend.container_commit(
            request.query.get("container", ""), repo=request.query.get("repo", ""),
            tag=request.query.get("tag", ""), comment=request.query.get("comment", ""),
            author=request.query.get("author", ""), pause=pause,
            changes=request.query.getall("changes", []), config=config)
        return json_response({"Id": image_id}, status=201)

    async def get_changes(request: web.Request) -> web.Response:
        found = await backend.container_changes(request.match_info["name"])
        return json_response([{"Kind": c.kind, "Path": c.path} for c in found] or None)

    add_route(app, "POST", "/commit", post_commit)
    add_route(app, "GET", "/containers/{name}/changes", get_changes)
