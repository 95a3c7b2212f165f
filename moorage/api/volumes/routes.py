"""Volume routes: decode, one backend call (in a worker thread where it blocks),
Docker's JSON."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from moorage import timefmt
from moorage.api import versions
from moorage.api.server import (
    add_route,
    go_json_error,
    json_response,
    parse_json_object,
    query_bool,
    query_filters,
)
from moorage.api.volumes.backend import VolumeBackend
from moorage.api.wire import decode
from moorage.errors import InvalidParameter
from moorage.model.volumes import VolumeCreateRequest, VolumeInfo, VolumeRecord


def add_routes(app: web.Application, backend: VolumeBackend) -> None:
    encoded = _Encoded()

    async def list_volumes(request: web.Request) -> web.Response:
        wanted = _filters(request, "error reading volume filters: ")
        found = backend.volumes(wanted)
        body = b'{"Volumes": [' + b", ".join(map(encoded.get, found)) + b'], "Warnings": null}'
        return web.Response(body=body, headers={"Content-Type": "application/json"})

    async def create(request: web.Request) -> web.Response:
        raw = await request.read()
        if not raw.strip():
            raise InvalidParameter("got EOF while reading request body")
        body = decode(VolumeCreateRequest, parse_json_object(raw), struct="VolumeCreateBody")
        made = await asyncio.to_thread(backend.create, body)
        return json_response(document(made), status=201)

    async def inspect(request: web.Request) -> web.Response:
        found = backend.inspect(request.match_info["name"])
        return web.Response(body=encoded.get(found), headers={"Content-Type": "application/json"})

    async def remove(request: web.Request) -> web.Response:
        await asyncio.to_thread(backend.remove, request.match_info["name"],
                                query_bool(request, "force"))
        return web.Response(status=204)

    async def prune(request: web.Request) -> web.Response:
        report = await asyncio.to_thread(
            backend.prune, _filters(request),
            versions.at_least(request["api_version"], "1.42"))
        return json_response({"VolumesDeleted": report.deleted,
                              "SpaceReclaimed": report.space_reclaimed})

    add_route(app, "GET", "/volumes", list_volumes)
    add_route(app, "POST", "/volumes/create", create)
    add_route(app, "POST", "/volumes/prune", prune)
    add_route(app, "GET", "/volumes/{name}", inspect)
    add_route(app, "DELETE", "/volumes/{name}", remove)


def _filters(request: web.Request, prefix: str = "") -> dict[str, list[str]]:
    """`filters`, with dockerd's words for one that is not JSON (json.Unmarshal's)."""
    raw = request.query.get("filters") or ""
    try:
        json.loads(raw or "{}")
    except ValueError as err:
        reason = go_json_error(raw, err).replace("unexpected EOF",
                                                 "unexpected end of JSON input")
        raise InvalidParameter(prefix + reason) from None
    return query_filters(request)


class _Encoded:
    """Each volume's JSON, made once: a record never changes (frozen; an update is a new
    object), so its bytes are kept for as long as the store gives the same object."""

    _LIMIT = 4096

    def __init__(self) -> None:
        # id -> (the record, held so that its id is not reused, its mountpoint, JSON)
        self._by_id: dict[int, tuple[VolumeRecord, str, bytes]] = {}

    def get(self, info: VolumeInfo) -> bytes:
        if info.size >= 0:  # UsageData: computed for this answer only
            return json.dumps(document(info)).encode()
        found = self._by_id.get(id(info.record))
        if found is not None and found[0] is info.record and found[1] == info.mountpoint:
            return found[2]
        data = json.dumps(document(info)).encode()
        if len(self._by_id) >= self._LIMIT:
            self._by_id.clear()
        self._by_id[id(info.record)] = (info.record, info.mountpoint, data)
        return data


def document(info: VolumeInfo) -> dict:
    """Docker's Volume object; UsageData only when the size was computed (system df)."""
    record = info.record
    seconds = record.created_ns - record.created_ns % 1_000_000_000  # Go's time.RFC3339
    doc: dict = {
        "CreatedAt": timefmt.format_ns(seconds), "Driver": record.driver,
        "Labels": _sorted(record.labels), "Mountpoint": info.mountpoint, "Name": record.name,
        "Options": _sorted(record.options), "Scope": "local"}
    if info.size >= 0:
        doc["UsageData"] = {"Size": info.size, "RefCount": info.ref_count}
    return doc


def _sorted(values: dict[str, str] | None) -> dict[str, str] | None:
    """A map as Go's encoding/json writes it: keys in order."""
    return None if values is None else dict(sorted(values.items()))
