"""Server-sent event streams: the hub's updates, a container's log and its stats, and a
compose project's logs merged; plus the log download.

Log lines go to the page as JSON data and are inserted there as text nodes, never as HTML.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from moorage.dashboard import rows
from moorage.dashboard.engine import APIError, ConnectionFailed
from moorage.dashboard.keys import ENGINE, HUB

KEEPALIVE = 15.0
LOG_TAIL = "500"


async def _sse(request: web.Request, messages: AsyncIterator[tuple[str, str]]
               ) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    await response.write(b"retry: 1000\n\n")
    iterator = aiter(messages)
    pending: asyncio.Task[tuple[str, str]] | None = None
    try:
        while True:
            pending = pending or asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE)
            if not done:
                await response.write(b": keepalive\n\n")
                continue
            try:
                event, data = pending.result()
            except StopAsyncIteration:
                break
            except (APIError, ConnectionFailed) as err:
                event, data = "failure", json.dumps({"message": getattr(err, "message",
                                                                        str(err))})
                await response.write(f"event: {event}\ndata: {data}\n\n".encode())
                break
            pending = None
            await response.write(f"event: {event}\ndata: {data}\n\n".encode())
    except ConnectionResetError:  # the page went away
        pass
    finally:
        if pending is not None:
            pending.cancel()
        if hasattr(iterator, "aclose"):
            await iterator.aclose()
    return response


async def live(request: web.Request) -> web.StreamResponse:
    return await _sse(request, request.app[HUB].subscribe())


def _log_params(request: web.Request, follow: bool) -> dict[str, Any]:
    return {"stdout": True, "stderr": True, "timestamps": True, "follow": follow,
            "tail": request.query.get("tail", LOG_TAIL)}


async def _log_lines(request: web.Request, container: str, prefix: str = ""
                     ) -> AsyncIterator[tuple[str, str]]:
    engine = request.app[ENGINE]
    doc = await engine.get(f"/containers/{container}/json")
    tty = bool((doc.get("Config") or {}).get("Tty"))
    stream = engine.log_stream(container, _log_params(request, True), tty)
    pending = {1: b"", 2: b""}
    try:
        async for fd, piece in stream:
            *complete, pending[fd] = (pending.get(fd, b"") + piece).split(b"\n")
            for line in complete:
                stamp, _, text = line.decode(errors="replace").rstrip("\r").partition(" ")
                yield "line", json.dumps({"ts": stamp, "text": text, "prefix": prefix,
                                          "stream": "stderr" if fd == 2 else "stdout"})
    finally:
        stream.close()


async def logs(request: web.Request) -> web.StreamResponse:
    return await _sse(request, _log_lines(request, request.match_info["id"]))


async def _merged(request: web.Request, members: list[dict[str, Any]]
                  ) -> AsyncIterator[tuple[str, str]]:
    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(1000)

    async def pump(container: dict[str, Any]) -> None:
        labels = container.get("Labels") or {}
        prefix = labels.get(rows.SERVICE_LABEL) or container["Names"][0].lstrip("/")
        async for message in _log_lines(request, container["Id"], prefix):
            await queue.put(message)

    tasks = [asyncio.create_task(pump(c)) for c in members]
    try:
        while True:
            yield await queue.get()
    finally:
        for task in tasks:
            task.cancel()


async def project_logs(request: web.Request) -> web.StreamResponse:
    project = request.match_info["project"]
    members = await request.app[ENGINE].get(
        "/containers/json", {"all": True,
                             "filters": {"label": [f"{rows.PROJECT_LABEL}={project}"]}})
    return await _sse(request, _merged(request, members))


async def log_download(request: web.Request) -> web.Response:
    container = request.match_info["id"]
    engine = request.app[ENGINE]
    doc = await engine.get(f"/containers/{container}/json")
    params = {**_log_params(request, False), "tail": "all"}
    stream = engine.log_stream(container, params, bool((doc.get("Config") or {}).get("Tty")))
    body = b"".join([piece async for _, piece in stream])
    name = doc["Name"].lstrip("/").replace('"', "")
    return web.Response(body=body, content_type="text/plain", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.log"'})


async def _stats(request: web.Request, container: str) -> AsyncIterator[tuple[str, str]]:
    stream = request.app[ENGINE].json_stream("GET", f"/containers/{container}/stats",
                                             {"stream": True})
    try:
        async for sample in stream:
            if not sample.get("read", "").startswith("0001"):
                yield "stats", json.dumps({"cpu": rows.cpu_percent(sample, None),
                                           "mem": rows.memory_bytes(sample),
                                           **rows.io_totals(sample)})
    finally:
        stream.close()


async def stats(request: web.Request) -> web.StreamResponse:
    return await _sse(request, _stats(request, request.match_info["id"]))


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/containers/{id}/logs", logs)
    router.add_get("/containers/{id}/logs.txt", log_download)
    router.add_get("/containers/{id}/stats", stats)
    router.add_get("/compose/{project}/logs", project_logs)
