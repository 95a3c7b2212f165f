"""The /networks routes: thin handlers over the NetworkBackend."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from aiohttp import web

from moorage.api.networks.documents import network_document
from moorage.api.server import add_route, json_response, query_filters, read_json
from moorage.api.wire import decode
from moorage.errors import InvalidParameter
from moorage.model.network_requests import (
    IPAM,
    EndpointIPAMConfig,
    EndpointSettings,
    NetworkConnect,
    NetworkCreateRequest,
)
from moorage.model.networks import CreateRequest, NetworkRecord, NetworkView, link_list


class NetworkBackend(Protocol):
    async def list(self, filters: Mapping[str, Sequence[str]]) -> list[NetworkView]: ...
    async def inspect(self, ref: str) -> NetworkView: ...
    async def create(self, request: CreateRequest) -> NetworkRecord: ...
    async def remove(self, ref: str) -> None: ...
    async def prune(self, filters: Mapping[str, Sequence[str]]) -> list[str]: ...
    async def connect(self, ref: str, container_ref: str, aliases: Sequence[str] = (),
                      address: str = "", links: Sequence[str] = ()) -> None: ...
    async def disconnect(self, ref: str, container_ref: str, force: bool = False) -> None: ...


def add_routes(app: web.Application, backend: NetworkBackend) -> None:
    async def get_networks(request: web.Request) -> web.Response:
        found = await backend.list(query_filters(request))
        return json_response([network_document(v) for v in found])

    async def get_network(request: web.Request) -> web.Response:
        return json_response(network_document(await backend.inspect(request.match_info["id"])))

    async def post_create(request: web.Request) -> web.Response:
        record = await backend.create(create_request(await read_json(request)))
        return json_response({"Id": record.id, "Warning": ""}, status=201)

    async def delete_network(request: web.Request) -> web.Response:
        await backend.remove(request.match_info["id"])
        return web.Response(status=204)

    async def post_prune(request: web.Request) -> web.Response:
        return json_response({"NetworksDeleted": await backend.prune(query_filters(request))
                              or None})

    async def post_connect(request: web.Request) -> web.Response:
        connect = decode(NetworkConnect, await read_json(request))
        endpoint = connect.endpoint_config or EndpointSettings()
        if endpoint.driver_opts or endpoint.mac_address:
            raise InvalidParameter("driver options and MAC addresses of a network "
                                   "connect are not supported yet")
        ipam = endpoint.ipam_config or EndpointIPAMConfig()
        if ipam.ipv6_address or ipam.link_local_ips:
            raise InvalidParameter("IPv6 and link-local addresses are not supported yet")
        await backend.connect(request.match_info["id"], connect.container,
                              endpoint.aliases or (), ipam.ipv4_address,
                              link_list(endpoint.links))
        return web.Response(status=200)

    async def post_disconnect(request: web.Request) -> web.Response:
        body = await read_json(request)
        await backend.disconnect(request.match_info["id"], str(body.get("Container") or ""),
                                 bool(body.get("Force")))
        return web.Response(status=200)

    for method, path, handler in (
            ("GET", "/networks", get_networks),
            ("GET", "/networks/{id}", get_network),
            ("POST", "/networks/create", post_create),
            ("DELETE", "/networks/{id}", delete_network),
            ("POST", "/networks/prune", post_prune),
            ("POST", "/networks/{id}/connect", post_connect),
            ("POST", "/networks/{id}/disconnect", post_disconnect)):
        add_route(app, method, path, handler)


def create_request(body: dict) -> CreateRequest:
    """POST /networks/create's body; what the engine cannot honour is refused."""
    given = decode(NetworkCreateRequest, body)
    for key, asked in (("Ingress", given.ingress), ("ConfigOnly", given.config_only)):
        if asked:
            raise InvalidParameter(f"{key} networks are not supported")
    if given.config_from is not None and given.config_from.network:
        raise InvalidParameter("networks configured from another network are not supported")
    ipam = given.ipam or IPAM()
    if ipam.options:
        raise InvalidParameter("IPAM driver options are not supported yet")
    scope = given.scope or "local"
    if scope != "local":
        raise InvalidParameter(f"{scope} scope networks are not supported")
    return CreateRequest(
        name=given.name, driver=given.driver or "bridge", internal=given.internal,
        attachable=given.attachable, enable_ipv6=given.enable_ipv6,
        ipam_driver=ipam.driver or "default", pools=ipam.config or (),
        options=given.options or {}, labels=given.labels or {})
