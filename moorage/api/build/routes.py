"""POST /build (Engine API "ImageBuild") and POST /build/prune ("BuildPrune").

The classic builder's query parameters; what moorage does not build yet is refused
with an error, never ignored."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, BinaryIO, Protocol

from aiohttp import web

from moorage.api.images.streams import BodyReader
from moorage.api.server import (
    add_route,
    json_response,
    query_bool,
    query_filters,
    query_int,
    read_json,
    start_stream,
)
from moorage.errors import InvalidParameter
from moorage.model.build import BuildCachePruneReport, BuildRequest

Emit = Callable[[dict[str, Any]], Awaitable[None]]


class BuildBackend(Protocol):
    async def build(self, request: BuildRequest, body: BinaryIO, emit: Emit) -> None: ...

    async def prune(self, filters: dict[str, Any]) -> BuildCachePruneReport: ...

    async def needed(self, manifest: Any) -> list[str]: ...

    async def build_kept(self, request: BuildRequest, manifest: Any,
                         body: BinaryIO, emit: Emit) -> None: ...


def _json_value(request: web.Request, name: str) -> Any:
    raw = request.query.get(name, "")
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as err:
        raise InvalidParameter(f"invalid {name} parameter: {err}") from None


def _json_map(request: web.Request, name: str) -> dict[str, Any]:
    value = _json_value(request, name) or {}
    if not isinstance(value, dict):
        raise InvalidParameter(f"invalid {name} parameter: not a JSON object")
    return value


# Parameters the classic builder honours that moorage's builder does not have yet.
_REFUSED = {
    "remote": "a remote build context (remote=) is not supported by moorage's builder yet",
    "squash": "squash is only supported with experimental mode",
    "outputs": "outputs are not supported by the classic builder's API",
    "cgroupparent": "cgroupparent is not supported by moorage's builder yet",
    "isolation": "isolation is not supported by moorage's builder yet",
    "session": "BuildKit sessions are not supported: build with DOCKER_BUILDKIT=0",
}
# Query name → the RUN containers' HostConfig field.
_RESOURCES = {"memory": "memory", "memswap": "memory_swap", "cpushares": "cpu_shares",
              "cpusetcpus": "cpuset_cpus", "cpusetmems": "cpuset_mems",
              "cpuperiod": "cpu_period", "cpuquota": "cpu_quota"}


def build_request(request: web.Request) -> BuildRequest:
    query = request.query
    for name, message in _REFUSED.items():
        value = query.get(name, "")
        if value and value not in ("0", "false", "[]", "{}"):
            raise InvalidParameter(message)
    if query.get("version") == "2":
        raise InvalidParameter("BuildKit is not supported by moorage's builder API: build "
                               "with DOCKER_BUILDKIT=0")
    resources: dict[str, int | str] = {}
    for name, field in _RESOURCES.items():
        value = query.get(name, "")
        if value in ("", "0"):
            continue
        resources[field] = value if name.startswith("cpuset") else \
            query_int(request, name, 0) or 0
    if _json_value(request, "cachefrom"):
        raise InvalidParameter("cachefrom is not supported by moorage's builder yet")
    if _json_value(request, "ulimits"):
        raise InvalidParameter("ulimits are not supported by moorage's builder yet")
    platform = query.get("platform", "")
    if platform:
        import platform as host

        from moorage.image.config import GO_ARCH
        arch = GO_ARCH.get(host.machine(), host.machine())
        if platform.lower() not in ("linux", f"linux/{arch}", arch):
            raise InvalidParameter(f'"{platform}": unsupported platform: moorage builds '
                                   f"for linux/{arch} only")
    args = _json_map(request, "buildargs")
    labels = _json_map(request, "labels")
    return BuildRequest(
        tags=tuple(query.getall("t", [])), dockerfile=query.get("dockerfile", "Dockerfile"),
        build_args={str(k): (None if v is None else str(v)) for k, v in args.items()},
        target=query.get("target", ""), no_cache=query_bool(request, "nocache"),
        pull=query_bool(request, "pull"), remove=query_bool(request, "rm", True),
        force_remove=query_bool(request, "forcerm"),
        labels={str(k): str(v) for k, v in labels.items()},
        network_mode=query.get("networkmode", "") if query.get("networkmode") != "default"
        else "", quiet=query_bool(request, "q"),
        extra_hosts=tuple(h for v in query.getall("extrahosts", []) for h in v.split(",")
                          if h),
        shm_size=query_int(request, "shmsize", 0) or 0, resources=resources)


def _read_manifest(body: BinaryIO) -> Any:
    """The JSON manifest that starts a kept-context build's body, after its length
    (8 bytes, big-endian)."""
    size = int.from_bytes(_read_exactly(body, 8), "big")
    if size > _MANIFEST_MAX:
        raise InvalidParameter("invalid build context manifest: too large")
    try:
        return json.loads(_read_exactly(body, size))
    except ValueError as err:
        raise InvalidParameter(f"invalid build context manifest: {err}") from None


_MANIFEST_MAX = 256 << 20


def _read_exactly(body: BinaryIO, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = body.read(size - len(data))
        if not chunk:
            raise InvalidParameter("invalid build context manifest: the body ends early")
        data += chunk
    return bytes(data)


def add_routes(app: web.Application, backend: BuildBackend) -> None:
    async def run_build(request: web.Request,
                        start: Callable[[BuildRequest, BinaryIO, Emit], Awaitable[None]],
                        ) -> web.StreamResponse:
        build = build_request(request)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})

        async def emit(message: dict[str, Any]) -> None:
            if not response.prepared:
                await start_stream(request, response)
            await response.write(json.dumps(message).encode() + b"\r\n")

        body = BodyReader(request.content, asyncio.get_running_loop())
        await start(build, body, emit)  # type: ignore[arg-type]
        if not response.prepared:
            await start_stream(request, response)
        await response.write_eof()
        return response

    async def post_build(request: web.Request) -> web.StreamResponse:
        return await run_build(request, backend.build)

    async def post_kept_build(request: web.Request) -> web.StreamResponse:
        async def start(build: BuildRequest, body: BinaryIO, emit: Emit) -> None:
            manifest = await asyncio.to_thread(_read_manifest, body)
            await backend.build_kept(build, manifest, body, emit)

        return await run_build(request, start)

    async def post_needed(request: web.Request) -> web.Response:
        manifest = await read_json(request)
        return json_response({"Needed": await backend.needed(manifest)})

    async def post_build_prune(request: web.Request) -> web.Response:
        report = await backend.prune(query_filters(request))
        return json_response({"CachesDeleted": list(report.deleted) or None,
                              "SpaceReclaimed": report.space_reclaimed})

    add_route(app, "POST", "/build", post_build)
    add_route(app, "POST", "/build/prune", post_build_prune)
    # moorage's own: a build context kept between builds, sent incrementally
    # (docs/architecture.md, "Kept build contexts").
    add_route(app, "POST", "/moorage/build/context", post_needed)
    add_route(app, "POST", "/moorage/build", post_kept_build)
