"""Images: the list, tag, remove, history, and a pull whose progress streams to the page."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from moorage.dashboard.keys import ENGINE, REGISTRY_AUTH
from moorage.dashboard.render import template


def _references(image: dict[str, Any]) -> list[str]:
    tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
    return tags or ["<none>:<none>"]


async def _listing(request: web.Request) -> dict[str, Any]:
    engine = request.app[ENGINE]
    images = await engine.get("/images/json")
    networks = await engine.get("/networks")
    images.sort(key=lambda i: -i.get("Created", 0))
    return {"images": [{"id": i["Id"], "short": i["Id"].removeprefix("sha256:")[:12],
                        "references": _references(i), "size": i.get("Size", 0),
                        "created": i.get("Created", 0)} for i in images],
            "networks": sorted(n["Name"] for n in networks)}


@template("images.html")
async def index(request: web.Request) -> dict[str, Any]:
    return await _listing(request)


@template("image_rows.html")
async def fragment(request: web.Request) -> dict[str, Any]:
    return await _listing(request)


@template("image_history.html")
async def history(request: web.Request) -> dict[str, Any]:
    return {"layers": await request.app[ENGINE].get(
        f"/images/{request.match_info['id']}/history")}


async def tag(request: web.Request) -> web.Response:
    form = await request.post()
    target = str(form.get("target", "")).strip()
    repo, _, version = target.rpartition(":") if ":" in target.rsplit("/", 1)[-1] \
        else (target, "", "latest")
    await request.app[ENGINE].post(f"/images/{request.match_info['id']}/tag",
                                   {"repo": repo, "tag": version})
    return web.Response(status=204)


async def remove(request: web.Request) -> web.Response:
    """`docker rmi REF`: a reference of several untags it, the last one removes the image."""
    reference = request.query.get("ref", "")
    if not reference:
        raise web.HTTPBadRequest(text="an image reference or ID is needed")
    await request.app[ENGINE].delete(f"/images/{reference}")
    return web.Response(status=204)


async def pull(request: web.Request) -> web.StreamResponse:
    """The engine's progress as JSON lines, passed through as it comes: the page draws a
    bar per layer. An error in the stream ends it with the engine's message."""
    form = await request.post()
    reference = str(form.get("reference", "")).strip()
    if not reference:
        raise web.HTTPBadRequest(text="an image reference is needed")
    name, tag_part = reference, "latest"
    if "@" not in reference and ":" in reference.rsplit("/", 1)[-1]:
        name, _, tag_part = reference.rpartition(":")
    registry = reference.split("/", 1)[0] if "/" in reference else "docker.io"
    headers = {}
    auth = request.app[REGISTRY_AUTH].get(registry)
    if auth:
        headers["X-Registry-Auth"] = auth
    stream = request.app[ENGINE].json_stream(
        "POST", "/images/create",
        {"fromImage": name, "tag": tag_part if "@" not in reference else None}, None, headers)
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson",
                                           "Cache-Control": "no-store"})
    await response.prepare(request)
    try:
        async for item in stream:
            await response.write(json.dumps(item).encode() + b"\n")
    except Exception as err:  # the engine's refusal, after the answer has begun
        message = getattr(err, "message", None) or str(err)
        await response.write(json.dumps({"error": message}).encode() + b"\n")
    finally:
        stream.close()
    await response.write_eof()
    return response


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/images", index)
    router.add_get("/images/fragment", fragment)
    router.add_post("/images/pull", pull)
    router.add_get("/images/{id}/history", history)
    router.add_post("/images/{id}/tag", tag)
    router.add_delete("/images", remove)
