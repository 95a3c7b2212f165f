"""Image routes (Engine API "Image" section) and moorage's own store check.

Handlers decode, make one backend call in a worker thread (the store hashes,
unpacks and fsyncs), and encode Docker's JSON. Names may contain slashes
(``registry:5000/team/app``), hence ``{name:.+}`` patterns, registered after
the fixed paths (/images/json, /images/load…) so those win.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from moorage.api import versions
from moorage.api.distribution.routes import Handlers as DistributionHandlers
from moorage.api.distribution.routes import add_routes as distribution_routes
from moorage.api.images.backend import ImageBackend, ImageExport
from moorage.api.images.streams import BodyReader, ResponseWriter
from moorage.api.progress import stream_progress
from moorage.api.server import add_route, json_response, query_bool, query_filters, start_stream
from moorage.errors import InvalidParameter
from moorage.model.image import (
    CheckReport,
    DeleteItem,
    HistoryItem,
    ImageDetail,
    ImageSummary,
    ImportRequest,
)
from moorage.protocol.jsonmessage import Emit, JSONMessage
from moorage.protocol.stringid import short_id

log = logging.getLogger("moord.api.images")


def add_routes(app: web.Application, backend: ImageBackend) -> None:
    """Register the image routes on ``app``, served by ``backend``."""
    handlers = _Handlers(backend)
    distribution_routes(app, backend)
    add_route(app, "GET", "/images/json", handlers.get_images_json)
    add_route(app, "POST", "/images/create", handlers.post_images_create)
    add_route(app, "POST", "/images/load", handlers.post_images_load)
    add_route(app, "GET", "/images/get", handlers.get_images_get)
    add_route(app, "POST", "/images/prune", handlers.post_images_prune)
    add_route(app, "GET", "/images/{name:.+}/json", handlers.get_images_by_name)
    add_route(app, "GET", "/images/{name:.+}/history", handlers.get_images_history)
    add_route(app, "GET", "/images/{name:.+}/get", handlers.get_images_get)
    add_route(app, "POST", "/images/{name:.+}/tag", handlers.post_images_tag)
    add_route(app, "DELETE", "/images/{name:.+}", handlers.delete_images)
    # Our own endpoint, under a prefix Docker's API cannot clash with.
    add_route(app, "GET", "/moor/system/check", handlers.store_check)
    add_route(app, "POST", "/moor/system/check", handlers.store_check)


def _before(request: web.Request, version: str) -> bool:
    return not versions.at_least(request["api_version"], version)


def _json_lines(messages: list[dict[str, Any]]) -> web.Response:
    """A JSON-message stream (jsonmessage) sent at once: it is short."""
    body = "".join(json.dumps(m) + "\n" for m in messages).encode()
    # Exactly "application/json": the docker CLI renders the stream only then,
    # and aiohttp's content_type= would append a charset.
    return web.Response(body=body, headers={"Content-Type": "application/json"})


def summary(image: ImageSummary, old_api: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Containers": -1, "Created": image.created, "Id": image.id, "Labels": image.labels,
        "ParentId": image.parent_id, "RepoDigests": list(image.repo_digests),
        "RepoTags": list(image.repo_tags), "SharedSize": -1, "Size": image.size,
    }
    if old_api:  # VirtualSize went away in API 1.44
        out["VirtualSize"] = image.size
    return out


def _detail(image: ImageDetail, request: web.Request) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Id": image.id, "RepoTags": list(image.repo_tags),
        "RepoDigests": list(image.repo_digests), "Parent": image.parent,
        "Comment": image.comment, "Created": image.created,
    }
    if _before(request, "1.45"):  # Container and ContainerConfig went away in 1.45
        out["Container"] = image.container
        out["ContainerConfig"] = image.container_config
    out.update({"DockerVersion": image.docker_version, "Author": image.author,
                "Config": image.config, "Architecture": image.architecture})
    if image.variant:
        out["Variant"] = image.variant
    out["Os"] = image.os
    if image.os_version:
        out["OsVersion"] = image.os_version
    out["Size"] = image.size
    if _before(request, "1.44"):
        out["VirtualSize"] = image.size
    out["GraphDriver"] = {"Data": image.graph_driver_data or None, "Name": "overlay2"}
    out["RootFS"] = {"Type": "layers", "Layers": list(image.layers)}
    out["Metadata"] = {"LastTagTime": image.last_tag_time}
    return out


def _history(item: HistoryItem) -> dict[str, Any]:
    return {"Comment": item.comment, "Created": item.created, "CreatedBy": item.created_by,
            "Id": item.id, "Size": item.size, "Tags": list(item.tags) or None}


def _delete_items(items: tuple[DeleteItem, ...] | list[DeleteItem]) -> list[dict[str, str]]:
    return [{"Untagged": i.untagged} if i.untagged else {"Deleted": i.deleted} for i in items]


def _check(report: CheckReport) -> dict[str, Any]:
    return {"Blobs": report.blobs, "Snapshots": report.snapshots, "Images": report.images,
            "References": report.references, "Problems": list(report.problems),
            "Orphans": list(report.orphans), "Removed": list(report.removed),
            "Clean": not report.problems and not report.orphans}


class _Handlers:
    def __init__(self, backend: ImageBackend) -> None:
        self.backend = backend
        self.distribution = DistributionHandlers(backend)

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def get_images_json(self, request: web.Request) -> web.Response:
        images = await self._call(self.backend.images, query_filters(request),
                                  query_bool(request, "all"))
        old_api = _before(request, "1.44")
        return json_response([summary(i, old_api) for i in images])

    async def get_images_by_name(self, request: web.Request) -> web.Response:
        image = await self._call(self.backend.image_inspect, request.match_info["name"])
        return json_response(_detail(image, request))

    async def get_images_history(self, request: web.Request) -> web.Response:
        items = await self._call(self.backend.image_history, request.match_info["name"])
        return json_response([_history(i) for i in items])

    async def post_images_tag(self, request: web.Request) -> web.Response:
        await self._call(self.backend.tag_image, request.match_info["name"],
                         request.query.get("repo", ""), request.query.get("tag", ""))
        return web.Response(status=201)

    async def delete_images(self, request: web.Request) -> web.Response:
        items = await self._call(self.backend.image_delete, request.match_info["name"],
                                 query_bool(request, "force"), not query_bool(request, "noprune"))
        return json_response(_delete_items(items))

    async def post_images_prune(self, request: web.Request) -> web.Response:
        report = await self._call(self.backend.images_prune, query_filters(request))
        return json_response({"ImagesDeleted": _delete_items(report.deleted) or None,
                              "SpaceReclaimed": report.space_reclaimed})

    async def post_images_load(self, request: web.Request) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        body = BodyReader(request.content, loop)
        namespace = request.query.get("namespace", "")
        if query_bool(request, "quiet", default=True):
            # The answer waits for the whole load, so a bad archive gets a real 4xx
            # status rather than an error inside a 200 stream (dockerd's way).
            lines = await self._call(self.backend.load_image, body, namespace)
            return _json_lines([JSONMessage(stream=line + "\n").to_json() for line in lines])

        async def load(emit: Emit) -> None:
            # The docker CLI on a terminal: a bar for each layer unpacked, as dockerd's.
            def progress(diff_id: str, current: int, total: int) -> None:
                loop.call_soon_threadsafe(emit, JSONMessage(
                    "Loading layer", short_id(diff_id), current, total))

            lines = await self._call(self.backend.load_image, body, namespace, progress)
            for line in lines:
                emit(JSONMessage(stream=line + "\n"))

        return await stream_progress(request, load)

    async def post_images_create(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        if query.get("fromImage"):
            return await self.distribution.pull(request)
        source = query.get("fromSrc")
        if not source:
            raise InvalidParameter("fromImage or fromSrc is required")
        import_request = ImportRequest(
            url=None if source == "-" else source, repo=query.get("repo", ""),
            tag=query.get("tag", ""), message=query.get("message", ""),
            changes=tuple(query.getall("changes", [])))
        body = BodyReader(request.content, asyncio.get_running_loop()) \
            if source == "-" else None
        image_id = await self._call(self.backend.import_image, import_request, body)
        return _json_lines([{"status": image_id}])

    async def get_images_get(self, request: web.Request) -> web.StreamResponse:
        names = [request.match_info["name"]] if "name" in request.match_info \
            else request.query.getall("names", [])
        export: ImageExport = await self._call(self.backend.export_image, names)
        response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
        await start_stream(request, response)
        writer = ResponseWriter(response, asyncio.get_running_loop())
        try:
            await self._call(_write_all, export, writer)
        except Exception:
            # The status line is gone: all a client can be told is that the tar is cut.
            log.exception("saving %s failed", names)
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
        return response

    async def store_check(self, request: web.Request) -> web.Response:
        report = await self._call(self.backend.store_check, query_bool(request, "repair"))
        return json_response(_check(report))


def _write_all(export: ImageExport, writer: ResponseWriter) -> None:
    export.write_to(writer)
    writer.flush()
