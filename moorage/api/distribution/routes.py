"""Registry routes: pull (POST /images/create?fromImage=), push, /auth, /distribution.

Engine API: pull and push answer a JSON-message stream; an error found before
anything was streamed gets a plain error status (dockerd's WriteFlusher has
not flushed yet), a later one a final ``errorDetail`` line after the 200.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from moorage.api.distribution.backend import DistributionBackend, Emit
from moorage.api.server import add_route, json_response, read_json, start_stream
from moorage.errors import MoorError
from moorage.model.distribution import AuthConfig, PullRequest, PushRequest
from moorage.protocol.jsonmessage import JSONMessage, encode

log = logging.getLogger("moord.api.distribution")


def add_routes(app: web.Application, backend: DistributionBackend) -> None:
    """/images/create?fromImage= is routed by the image routes to ``pull``."""
    handlers = Handlers(backend)
    add_route(app, "POST", "/auth", handlers.post_auth)
    add_route(app, "GET", "/distribution/{name:.+}/json", handlers.get_distribution_json)
    add_route(app, "POST", "/images/{name:.+}/push", handlers.post_images_push)


def auth_from_header(request: web.Request) -> AuthConfig:
    """X-Registry-Auth: base64url JSON AuthConfig. Like dockerd, a header that does
    not decode is treated as no credentials."""
    raw = request.headers.get("X-Registry-Auth", "")
    if not raw:
        return AuthConfig()
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, binascii.Error):
        return AuthConfig()
    return auth_config(data) if isinstance(data, dict) else AuthConfig()


def auth_config(data: dict[str, Any]) -> AuthConfig:
    username, password = str(data.get("username") or ""), str(data.get("password") or "")
    if not username and data.get("auth"):
        # The CLI's config.json form: base64("user:password").
        try:
            username, _, password = base64.b64decode(str(data["auth"])).decode().partition(":")
        except (ValueError, binascii.Error):
            pass
    return AuthConfig(username=username, password=password,
                      server_address=str(data.get("serveraddress") or ""),
                      identity_token=str(data.get("identitytoken") or ""),
                      registry_token=str(data.get("registrytoken") or ""))


async def stream_progress(request: web.Request,
                          run: Callable[[Emit], Awaitable[None]]) -> web.StreamResponse:
    queue: asyncio.Queue[JSONMessage | None] = asyncio.Queue()
    task = asyncio.create_task(run(queue.put_nowait))
    task.add_done_callback(lambda _task: queue.put_nowait(None))
    response: web.StreamResponse | None = None
    try:
        while (message := await queue.get()) is not None:
            if response is None:
                # Exactly "application/json": the docker CLI draws progress only then.
                response = web.StreamResponse(headers={"Content-Type": "application/json"})
                await start_stream(request, response)
            chunk, ended = encode(message), False
            while not queue.empty():  # send what piled up in one write
                more = queue.get_nowait()
                if more is None:
                    ended = True
                    break
                chunk += encode(more)
            await response.write(chunk)
            if ended:
                break
        try:
            await task
        except MoorError as e:
            if response is None:
                raise
            await response.write(encode(JSONMessage(error=str(e))))
        except Exception as e:
            log.exception("%s %s failed", request.method, request.path)
            if response is None:
                raise
            await response.write(encode(JSONMessage(error=str(e) or type(e).__name__)))
    finally:
        if not task.done():
            # The client went away: stop the transfer (it cleans up after itself).
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert response is not None
    await response.write_eof()
    return response


class Handlers:
    def __init__(self, backend: DistributionBackend) -> None:
        self.backend = backend

    async def pull(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        pull = PullRequest(from_image=query["fromImage"], tag=query.get("tag", ""),
                           platform=query.get("platform", ""), auth=auth_from_header(request))
        return await stream_progress(request, lambda emit: self.backend.pull_image(pull, emit))

    async def post_images_push(self, request: web.Request) -> web.StreamResponse:
        push = PushRequest(name=request.match_info["name"], tag=request.query.get("tag", ""),
                           auth=auth_from_header(request))
        return await stream_progress(request, lambda emit: self.backend.push_image(push, emit))

    async def post_auth(self, request: web.Request) -> web.Response:
        token = await self.backend.login(auth_config(await read_json(request)))
        return json_response({"Status": "Login Succeeded", "IdentityToken": token})

    async def get_distribution_json(self, request: web.Request) -> web.Response:
        found = await self.backend.distribution_inspect(request.match_info["name"],
                                                        auth_from_header(request))
        platforms = []
        for p in found.platforms:
            entry = {"architecture": p.architecture, "os": p.os}
            if p.variant:
                entry["variant"] = p.variant
            platforms.append(entry)
        return json_response({"Descriptor": {"mediaType": found.media_type,
                                             "digest": found.digest, "size": found.size},
                              "Platforms": platforms})
