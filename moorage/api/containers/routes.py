"""Container routes (Engine API: Container section), thin: decode, one backend call, encode."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import time

from aiohttp import web

from moorage.api.containers.backend import ContainerBackend, ProcessStream
from moorage.api.containers.models import Container, ContainerConfig, HostConfig
from moorage.api.hijack import MULTIPLEXED_STREAM, RAW_STREAM, Hijacked, hijack
from moorage.api.server import (
    add_route,
    json_response,
    query_bool,
    query_filters,
    query_int,
    read_json,
)
from moorage.api.wire import decode, encode
from moorage.errors import InvalidParameter
from moorage.protocol import stdcopy


def inspect_document(container: Container, exec_ids: list[str]) -> dict:
    doc = encode(container)
    doc["ExecIDs"] = exec_ids or None
    doc["SizeRw"] = None
    doc["GraphDriver"] = {"Name": "overlay2", "Data": None}
    doc["NetworkSettings"] = {"Bridge": "", "SandboxID": "", "Ports": {}, "Networks": {}}
    return doc


def _seconds(stamp: str) -> float:
    whole = stamp.rstrip("Z").partition(".")[0]
    return datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.UTC).timestamp()


def human_duration(seconds: float) -> str:
    """go-units HumanDuration, as `docker ps` shows ages."""
    s = int(seconds)
    minutes, hours = s // 60, s // 3600
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def status_text(container: Container) -> str:
    state = container.state
    now = time.time()
    if state.running:
        text = f"Up {human_duration(now - _seconds(state.started_at))}"
        return text + " (Paused)" if state.paused else text
    if state.status == "exited":
        return f"Exited ({state.exit_code}) {human_duration(now - _seconds(state.finished_at))} ago"
    return state.status.capitalize()


def summary(container: Container) -> dict:
    command = " ".join([container.path, *container.args])
    return {
        "Id": container.id, "Names": [container.name], "Image": container.config.image,
        "ImageID": container.image, "Command": command,
        "Created": int(_seconds(container.created)), "Ports": [],
        "Labels": container.config.labels, "State": container.state.status,
        "Status": status_text(container),
        "HostConfig": {"NetworkMode": container.host_config.network_mode or "none"},
        "NetworkSettings": {"Networks": {}},
        "Mounts": [encode(m) for m in container.mounts],
    }


def _body_models(body: dict) -> tuple[ContainerConfig, HostConfig]:
    host_raw = body.get("HostConfig") or {}
    if not isinstance(host_raw, dict):
        raise InvalidParameter("json: cannot unmarshal into Go struct field "
                               "HostConfig of type container.HostConfig")
    return decode(ContainerConfig, body), decode(HostConfig, host_raw, "HostConfig")



async def relay(client: Hijacked, process: ProcessStream, tty: bool, stdin: bool) -> None:
    """Output to the client until the process ends; the client's bytes to its stdin."""

    async def pump_stdin() -> None:
        while (data := await client.read()) is not None:
            await process.write(data)
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


def add_routes(app: web.Application, backend: ContainerBackend) -> None:
    """Register the container routes on `app`, served by `backend`."""

    async def post_containers_create(request: web.Request) -> web.Response:
        body = await read_json(request)
        config, host = _body_models(body)
        container = await backend.container_create(request.query.get("name", ""), config, host)
        return json_response({"Id": container.id, "Warnings": []}, status=201)

    async def get_containers_json(request: web.Request) -> web.Response:
        found = backend.container_list(all=query_bool(request, "all"),
                                       limit=query_int(request, "limit"),
                                       filters=query_filters(request))
        return json_response([summary(c) for c in found])

    async def get_container_inspect(request: web.Request) -> web.Response:
        container = backend.get(request.match_info["name"])
        return json_response(inspect_document(container, backend.execs.ids_of(container.id)))

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
        await response.prepare(request)
        code, error = await future
        result: dict = {"StatusCode": code}
        if error:
            result["Error"] = {"Message": error}
        with contextlib.suppress(ConnectionError):  # the client stopped waiting
            await response.write(json.dumps(result).encode() + b"\n")
            await response.write_eof()
        return response

    async def delete_containers(request: web.Request) -> web.Response:
        await backend.container_rm(request.match_info["name"], query_bool(request, "force"))
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
        stdin = query_bool(request, "stdin")
        container, future = await backend.container_attach(
            request.match_info["name"], stdin=stdin, stdout=query_bool(request, "stdout"),
            stderr=query_bool(request, "stderr"))
        tty = container.config.tty
        client = await hijack(request, RAW_STREAM if tty else MULTIPLEXED_STREAM)
        try:
            process = await future
        except Exception:
            return client.response
        await relay(client, process, tty, stdin)
        return client.response

    async def get_containers_logs(request: web.Request) -> web.StreamResponse:
        stdout, stderr = query_bool(request, "stdout"), query_bool(request, "stderr")
        if not stdout and not stderr:
            raise InvalidParameter("You must choose at least one stream")
        tail_text = request.query.get("tail", "all")
        tail = None if tail_text in ("all", "") else query_int(request, "tail")
        container, entries = backend.container_logs(
            request.match_info["name"], follow=query_bool(request, "follow"),
            since=_time_param(request, "since"), until=_time_param(request, "until"),
            tail=tail if tail is None or tail >= 0 else None)
        tty = container.config.tty
        timestamps = query_bool(request, "timestamps")
        response = web.StreamResponse(headers={
            "Content-Type": RAW_STREAM if tty else MULTIPLEXED_STREAM})
        await response.prepare(request)
        async for entry in entries:
            if (entry.stream == "stdout" and not stdout) or \
                    (entry.stream == "stderr" and not stderr):
                continue
            line = (entry.time.encode() + b" " + entry.line) if timestamps else entry.line
            stream = stdcopy.STDOUT if entry.stream == "stdout" else stdcopy.STDERR
            await response.write(line if tty else stdcopy.frame(stream, line))
        await response.write_eof()
        return response

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
        ("POST", "/containers/{name}/wait", post_containers_wait),
        ("DELETE", "/containers/{name}", delete_containers),
        ("POST", "/containers/{name}/rename", post_containers_rename),
        ("POST", "/containers/{name}/resize", post_containers_resize),
        ("POST", "/containers/{name}/attach", post_containers_attach),
        ("GET", "/containers/{name}/logs", get_containers_logs),
    ):
        add_route(app, method, path, handler)


def _time_param(request: web.Request, name: str) -> float:
    """Docker's since/until: unix seconds with optional fraction ("1700000000.5"), or 0."""
    value = request.query.get(name, "")
    if not value or value == "0":
        return 0.0
    try:
        return float(value)
    except ValueError:
        raise InvalidParameter(f"invalid value for {name}: {value!r}") from None
