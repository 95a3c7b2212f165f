"""Registry routes: pull (POST /images/create?fromImage=), push, /auth, /distribution.

Engine API: pull and push answer a JSON-message stream (moorage.api.progress).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aiohttp import web

from moorage.api.distribution.backend import DistributionBackend
from moorage.api.progress import stream_progress
from moorage.api.server import add_route, json_response, read_json
from moorage.model.distribution import AuthConfig, PullRequest, PushRequest


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
