"""Container routes (Engine API: Container section), thin: decode, one backend call, encode."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import AsyncIterator

from aiohttp import StreamReader, web
from aiohttp.http_parser import RawRequestMessage

from moorage.api import rawbody, rawrequest, versions
from moorage.api.containers.backend import ContainerBackend, LogLine, ProcessStream, TarChunks
from moorage.api.containers.documents import inspect_document, summary
from moorage.api.hijack import (
    MULTIPLEXED_STREAM,
    RAW_STREAM,
    Hijacked,
    WebSocketStream,
    detach_keys,
    hijack,
)
from moorage.api.server import (
    add_route,
    json_response,
    query_bool,
    query_filters,
    query_int,
    read_json,
    start_stream,
    unless_disconnected,
)
from moorage.api.streams import tracked
from moorage.api.wire import decode, decode_member
from moorage.errors import InvalidParameter, MoorError
from moorage.model.config import ContainerConfig, HostConfig
from moorage.model.network_requests import EndpointIPAMConfig, EndpointSettings, NetworkingConfig
from moorage.model.networks import EndpointRequest, link_list
from moorage.protocol import stdcopy

log = logging.getLogger("moord.api")


def _body_models(body: dict) -> tuple[ContainerConfig, HostConfig]:
    # dockerd decodes the body into runconfig.ContainerConfigWrapper (Config embedded);
    # errors name its fields so.
    return (decode(ContainerConfig, body, struct="ContainerConfigWrapper"),
            decode_member(HostConfig, body, "HostConfig", struct="ContainerConfigWrapper")
            or HostConfig())


async def relay(client: Hijacked | WebSocketStream, process: ProcessStream, tty: bool,
                stdin: bool) -> None:
    """Output to the client until the process ends (raw for a TTY, else in stdcopy's
    frames); the client's bytes to its stdin."""

    async def pump_stdin() -> None:
        while (data := await client.read()) is not None:
            await process.write(data)
        if client.detached:  # the stream ends here; the container runs on
            process.detach()
        else:
            process.close_stdin()

    feeder = asyncio.ensure_future(pump_stdin()) if stdin else None
    try:
        while (item := await process.read()) is not None:
            stream, payload = item
            await client.write(payload if tty else stdcopy.frame(stream, payload))
    except ConnectionError:
        pass
    finally:
        if feeder is not None:
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await feeder
        process.close()


async def _replayed(request: web.Request, backend: ContainerBackend, name: str,
                    log_path: str) -> list[LogLine]:
    """logs=1: the log to replay before attaching (moby containerAttach); read before the
    attach is registered, so a line is replayed or streamed, not both."""
    if not (query_bool(request, "logs") and log_path):
        return []
    return [entry async for batch in backend.container_logs(
        name, follow=False, since_ns=0, until_ns=0, tail=None)[1] for entry in batch]


def add_routes(app: web.Application, backend: ContainerBackend) -> None:
    """Register the container routes on `app`, served by `backend`."""

    async def post_containers_create(request: web.Request) -> web.Response:
        body = await read_json(request)
        config, host = _body_models(body)
        container = await backend.container_create(request.query.get("name", ""), config, host,
                                                   _endpoint_request(body))
        return json_response({"Id": container.id, "Warnings": []}, status=201)

    async def get_containers_json(request: web.Request) -> web.Response:
        found = await backend.container_list(all=query_bool(request, "all"),
                                       limit=query_int(request, "limit"),
                                       filters=query_filters(request))
        size = query_bool(request, "size")
        return json_response([summary(c, await backend.container_size(c) if size else None,
                                      backend.published_ports(c.id),
                                      backend.network_settings(c.id))
                              for c in found])

    async def get_container_inspect(request: web.Request) -> web.Response:
        container = backend.get(request.match_info["name"])
        size = await backend.container_size(container) if query_bool(request, "size") \
            else None
        return json_response(inspect_document(container, backend.execs.ids_of(container.id),
                                              backend.graph_driver_data(container), size,
                                              backend.network_settings(container.id),
                                              backend.published_ports(container.id)))

    async def post_containers_start(request: web.Request) -> web.Response:
        await backend.container_start(request.match_info["name"])
        return web.Response(status=204)

    async def post_containers_stop(request: web.Request) -> web.Response:
        await backend.container_stop(request.match_info["name"], query_int(request, "t"),
                                     request.query.get("signal", ""))
        return web.Response(status=204)

    async def post_containers_restart(request: web.Request) -> web.Response:
        await backend.container_restart(request.match_info["name"], query_int(request, "t"),
                                        request.query.get("signal", ""))
        return web.Response(status=204)

    async def post_containers_kill(request: web.Request) -> web.Response:
        await backend.container_kill(request.match_info["name"],
                                     request.query.get("signal", ""))
        return web.Response(status=204)

    async def post_containers_pause(request: web.Request) -> web.Response:
        await backend.container_pause(request.match_info["name"], True)
        return web.Response(status=204)

    async def post_containers_unpause(request: web.Request) -> web.Response:
        await backend.container_pause(request.match_info["name"], False)
        return web.Response(status=204)

    async def post_containers_wait(request: web.Request) -> web.StreamResponse:
        future = backend.container_wait(request.match_info["name"],
                                        request.query.get("condition", ""))
        # Headers first, as dockerd does: the client takes them as "the wait is registered"
        # before it starts the container.
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await start_stream(request, response)
        try:
            code, error = await unless_disconnected(request, future)
        except ConnectionResetError:
            return response
        result: dict = {"StatusCode": code}
        if error:
            result["Error"] = {"Message": error}
        with contextlib.suppress(ConnectionError):  # the client stopped waiting
            await response.write(json.dumps(result).encode() + b"\n")
            await response.write_eof()
        return response

    async def delete_containers(request: web.Request) -> web.Response:
        await backend.container_rm(request.match_info["name"], query_bool(request, "force"),
                                   query_bool(request, "v"))
        return web.Response(status=204)

    async def post_containers_rename(request: web.Request) -> web.Response:
        await backend.container_rename(request.match_info["name"],
                                       request.query.get("name", ""))
        return web.Response(status=204)

    async def post_containers_resize(request: web.Request) -> web.Response:
        await backend.container_resize(request.match_info["name"],
                                       query_int(request, "h", 0) or 0,
                                       query_int(request, "w", 0) or 0)
        return web.Response(status=200)

    async def post_containers_attach(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        stdin, stdout = query_bool(request, "stdin"), query_bool(request, "stdout")
        stderr = query_bool(request, "stderr")
        container = backend.get(name)
        replay = await _replayed(request, backend, name, container.log_path)
        tty = container.config.tty
        keys = detach_keys(request.query.get("detachKeys", ""),
                           "Invalid detach keys ({}) provided") if tty else b""
        future = None
        if query_bool(request, "stream"):
            # Registered before the 101: the client starts the container once it has it.
            container, future = await backend.container_attach(
                name, stdin=stdin, stdout=stdout, stderr=stderr)
        client = await hijack(request, RAW_STREAM if tty else MULTIPLEXED_STREAM, keys)
        try:
            for entry in replay:
                stream = stdcopy.STDOUT if entry.stream == "stdout" else stdcopy.STDERR
                if (stdout and stream == stdcopy.STDOUT) or (stderr and stream == stdcopy.STDERR):
                    await client.write(entry.line if tty else stdcopy.frame(stream, entry.line))
            process = await future if future is not None else None
        except ConnectionError:
            return client.response
        except MoorError:  # the start failed or the container went away: end the stream
            return client.response
        if process is not None:
            await relay(client, process, tty, stdin)
        return client.response

    async def get_containers_attach_ws(request: web.Request) -> web.StreamResponse:
        """moby's wsContainersAttach: every stream before API 1.42, which honours
        stdin/stdout/stderr; the output raw whether or not the container has a TTY."""
        name = request.match_info["name"]
        container = backend.get(name)
        every = not versions.at_least(request["api_version"], "1.42")
        stdin, stdout, stderr = (every or query_bool(request, key)
                                 for key in ("stdin", "stdout", "stderr"))
        replay = await _replayed(request, backend, name, container.log_path)
        keys = detach_keys(request.query.get("detachKeys", ""),
                           "Invalid detach keys ({}) provided")
        ws = web.WebSocketResponse()
        if not ws.can_prepare(request).ok:
            raise InvalidParameter("attach/ws: the request is not a WebSocket upgrade")
        future = None
        if query_bool(request, "stream"):
            container, future = await backend.container_attach(
                name, stdin=stdin, stdout=stdout, stderr=stderr)
        await start_stream(request, ws)
        client = WebSocketStream(ws, keys)
        try:
            for entry in replay:
                if (stdout and entry.stream == "stdout") or (stderr and entry.stream == "stderr"):
                    await client.write(entry.line)
            process = await future if future is not None else None
            if process is not None:
                await relay(client, process, True, stdin)
        except (ConnectionError, MoorError):
            pass
        await ws.close()
        return ws

    async def get_containers_logs(request: web.Request) -> web.StreamResponse:
        stdout, stderr = query_bool(request, "stdout"), query_bool(request, "stderr")
        if not stdout and not stderr:
            raise InvalidParameter("You must choose at least one stream")
        tail_text = request.query.get("tail", "all")
        tail = None if tail_text in ("all", "") else query_int(request, "tail")
        container, entries = backend.container_logs(
            request.match_info["name"], follow=query_bool(request, "follow"),
            since_ns=_time_param(request, "since"), until_ns=_time_param(request, "until"),
            tail=tail if tail is None or tail >= 0 else None)
        tty = container.config.tty
        timestamps = query_bool(request, "timestamps")
        response = web.StreamResponse(headers={
            "Content-Type": RAW_STREAM if tty else MULTIPLEXED_STREAM})
        await start_stream(request, response)
        async for batch in entries:
            chunks = []
            for entry in batch:
                if (entry.stream == "stdout" and not stdout) or \
                        (entry.stream == "stderr" and not stderr):
                    continue
                line = (entry.time.encode() + b" " + entry.line) if timestamps \
                    else entry.line
                stream = stdcopy.STDOUT if entry.stream == "stdout" else stdcopy.STDERR
                chunks.append(line if tty else stdcopy.frame(stream, line))
            if chunks:
                await response.write(b"".join(chunks))
        await response.write_eof()
        return response

    async def get_containers_top(request: web.Request) -> web.Response:
        titles, processes = await backend.container_top(request.match_info["name"],
                                                        request.query.get("ps_args", ""))
        return json_response({"Titles": titles, "Processes": processes})

    async def get_containers_stats(request: web.Request) -> web.StreamResponse:
        stream = query_bool(request, "stream", True)
        # one-shot came with API 1.41; older clients' value is not looked at, as dockerd.
        one_shot = query_bool(request, "one-shot") and not stream and \
            versions.parse(request["api_version"]) >= versions.parse("1.41")
        documents = backend.container_stats(request.match_info["name"], stream=stream,
                                            one_shot=one_shot)
        first = await anext(documents)
        if not stream:
            return json_response(first)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await start_stream(request, response)
        try:
            await response.write(json.dumps(first).encode() + b"\n")
            async for document in documents:
                await response.write(json.dumps(document).encode() + b"\n")
            await response.write_eof()
        except ConnectionError:
            pass
        finally:
            await documents.aclose()
        return response

    def _path_stat_header(found: dict) -> dict[str, str]:
        encoded = base64.b64encode(json.dumps(found, separators=(",", ":")).encode())
        return {"X-Docker-Container-Path-Stat": encoded.decode()}

    async def head_containers_archive(request: web.Request) -> web.Response:
        found = await backend.container_path_stat(request.match_info["name"],
                                                  request.query.get("path", ""))
        return web.Response(status=200, headers={**_path_stat_header(found),
                                                 "Content-Type": "application/json"})

    async def get_containers_archive(request: web.Request) -> web.StreamResponse:
        found, chunks = await backend.container_get_archive(request.match_info["name"],
                                                            request.query.get("path", ""))
        return await _send_tar(request, chunks, _path_stat_header(found))

    async def get_containers_export(request: web.Request) -> web.StreamResponse:
        chunks = await backend.container_export(request.match_info["name"])
        return await _send_tar(request, chunks, {})

    async def _send_tar(request: web.Request, chunks: TarChunks,
                        headers: dict[str, str]) -> web.StreamResponse:
        response = web.StreamResponse(headers={**headers, "Content-Type": "application/x-tar"})
        try:
            writer = await start_stream(request, response)
            body = await rawbody.direct_body(request, writer) if writer is not None else None
            if body is not None:
                # Shielded: a cancelled handler must not close the fd under the thread.
                await asyncio.shield(rawbody.send(body, chunks.write_to))
            else:
                async for piece in chunks:
                    await response.write(piece)
            await response.write_eof()
        except ConnectionError:
            pass
        except Exception:
            # The 200 and part of the tar are out: an error answer now would be read as
            # more tar. The client sees the stream cut short instead of waiting forever.
            log.exception("sending a tar to the client failed")
            if request.transport is not None:
                request.transport.abort()
        finally:
            await chunks.aclose()
        return response

    async def put_containers_archive(request: web.Request) -> web.Response:
        claimed = rawrequest.claim(request)  # before aiohttp's buffer fills and pauses
        try:
            await backend.container_put_archive(
                request.match_info["name"], request.query.get("path", ""),
                _body_chunks(request.content), direct=claimed and claimed.read,
                no_overwrite_dir_non_dir=query_bool(request, "noOverwriteDirNonDir"),
                copy_uid_gid=query_bool(request, "copyUIDGID"))
        finally:
            if claimed is not None:
                claimed.release()
        return web.Response(status=200)

    async def post_containers_update(request: web.Request) -> web.Response:
        await backend.container_update(request.match_info["name"], await read_json(request))
        return json_response({"Warnings": None})

    async def post_containers_prune(request: web.Request) -> web.Response:
        deleted, reclaimed = await backend.containers_prune(query_filters(request))
        return json_response({"ContainersDeleted": deleted or None,
                              "SpaceReclaimed": reclaimed})

    for method, path, handler in (
        ("POST", "/containers/create", post_containers_create),
        ("GET", "/containers/json", get_containers_json),
        ("GET", "/containers/{name}/json", get_container_inspect),
        ("POST", "/containers/{name}/start", post_containers_start),
        ("POST", "/containers/{name}/stop", post_containers_stop),
        ("POST", "/containers/{name}/restart", post_containers_restart),
        ("POST", "/containers/{name}/kill", post_containers_kill),
        ("POST", "/containers/{name}/pause", post_containers_pause),
        ("POST", "/containers/{name}/unpause", post_containers_unpause),
        ("POST", "/containers/{name}/wait", tracked(app, post_containers_wait)),
        ("DELETE", "/containers/{name}", delete_containers),
        ("POST", "/containers/{name}/rename", post_containers_rename),
        ("POST", "/containers/{name}/resize", post_containers_resize),
        ("GET", "/containers/{name}/top", get_containers_top),
        ("POST", "/containers/prune", post_containers_prune),
        ("GET", "/containers/{name}/export", tracked(app, get_containers_export)),
        ("POST", "/containers/{name}/update", post_containers_update),
        ("HEAD", "/containers/{name}/archive", head_containers_archive),
        ("GET", "/containers/{name}/archive", tracked(app, get_containers_archive)),
        ("PUT", "/containers/{name}/archive", tracked(app, put_containers_archive)),
        ("GET", "/containers/{name}/stats", tracked(app, get_containers_stats)),
        ("POST", "/containers/{name}/attach", tracked(app, post_containers_attach)),
        ("GET", "/containers/{name}/attach/ws", tracked(app, get_containers_attach_ws)),
        ("GET", "/containers/{name}/logs", tracked(app, get_containers_logs)),
    ):
        add_route(app, method, path, handler)


def claims_body(message: RawRequestMessage) -> bool:
    """Whether a request's handler reads its body from the socket (rawrequest.claim)."""
    return message.method == "PUT" and message.path.partition("?")[0].endswith("/archive")


async def _body_chunks(content: StreamReader) -> AsyncIterator[bytes]:
    """The request body's chunks as aiohttp received them: iter_chunked(n) joins what
    is buffered into pieces of n bytes, one more copy of every byte of a docker cp."""
    async for data, _ in content.iter_chunks():
        if data:
            yield data
        elif content.at_eof():
            # A bodiless request's reader is aiohttp's one shared EmptyStreamReader: once
            # any request has read its end, it answers (b"", True) forever, and this
            # loop, which then never waits, would hold the daemon's loop.
            return


def _time_param(request: web.Request, name: str) -> int:
    """Docker's since/until, unix seconds with an optional fraction ("1700000000.5"), in
    nanoseconds exactly (a float would lose the last digits of `logs -t`'s times); 0:
    unset."""
    value = request.query.get(name, "")
    seconds, _, fraction = value.partition(".")
    if not seconds.lstrip("-").isdigit() or (fraction and not fraction.isdigit()):
        if not value:
            return 0
        raise InvalidParameter(f"invalid value for {name}: {value!r}")
    sign = -1 if seconds.startswith("-") else 1
    return sign * (abs(int(seconds)) * 1_000_000_000 + int(fraction.ljust(9, "0")[:9]))


def _endpoint_request(body: dict) -> EndpointRequest | None:
    """NetworkingConfig: one network's aliases, links and address, as API 1.41 takes it;
    HostConfig.Links join the links of that network's endpoint, as dockerd makes them."""
    networking = decode_member(NetworkingConfig, body, "NetworkingConfig",
                               struct="ContainerConfigWrapper")
    endpoints = (networking.endpoints_config if networking else None) or {}
    mac = str(body.get("MacAddress") or "")
    network_mode = str((body.get("HostConfig") or {}).get("NetworkMode") or "default")
    # dockerd makes links only on a network; with none or host it has nothing to link
    # (docker-compose 1.29's `run` sends its dependencies' links even there).
    links = () if network_mode in ("none", "host") \
        else link_list((body.get("HostConfig") or {}).get("Links"))
    if len(endpoints) > 1:
        raise InvalidParameter("Container cannot be connected to network endpoints: "
                               + ", ".join(endpoints))
    for network, given in endpoints.items():
        settings = given or EndpointSettings()
        ipam = settings.ipam_config or EndpointIPAMConfig()
        mac = settings.mac_address or mac
        if settings.driver_opts or ipam.ipv6_address or ipam.link_local_ips:
            raise InvalidParameter("driver options and IPv6 or link-local addresses "
                                   "of an endpoint are not supported yet")
        aliases = settings.aliases or ()
        links = tuple(dict.fromkeys((*links, *link_list(settings.links))))
        address = ipam.ipv4_address
        if aliases or address or mac or links:
            return EndpointRequest(network, aliases, address, mac, links)
    if links:
        return EndpointRequest(network_mode, mac_address=mac, links=links)
    return EndpointRequest(network_mode, mac_address=mac) if mac else None
