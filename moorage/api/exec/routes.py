"""Exec routes (Engine API: Exec section)."""

from __future__ import annotations

from aiohttp import web

from moorage.api.containers.backend import ContainerBackend
from moorage.api.containers.routes import relay
from moorage.api.hijack import MULTIPLEXED_STREAM, RAW_STREAM, detach_keys, hijack
from moorage.api.server import add_route, failure, json_response, query_int, read_json
from moorage.api.streams import tracked
from moorage.api.wire import decode
from moorage.model.config import ExecConfig
from moorage.protocol import stdcopy


def add_routes(app: web.Application, backend: ContainerBackend) -> None:
    execs = backend.execs

    async def post_container_exec_create(request: web.Request) -> web.Response:
        config = decode(ExecConfig, await read_json(request))
        detach_keys(config.detach_keys, "Invalid escape keys ({}) provided")
        instance = await execs.exec_create(request.match_info["name"], config)
        return json_response({"Id": instance.id}, status=201)

    async def post_exec_start(request: web.Request) -> web.StreamResponse:
        body = await read_json(request, required=False)
        detach = bool(body.get("Detach"))
        instance = execs.get(request.match_info["id"])
        tty = bool(body.get("Tty", instance.config.tty))
        if detach:
            await execs.exec_start(instance.id, detach=True)
            return web.Response(status=200)
        # As dockerd: 101 first, then the process starts. Output sent on the heels of
        # the 101 lands in the buffer a client reads the headers with (docker-py
        # then reads the bare socket and loses it).
        keys = detach_keys(instance.config.detach_keys, "Invalid escape keys ({}) provided") \
            if tty else b""
        client = await hijack(request, RAW_STREAM if tty else MULTIPLEXED_STREAM, keys)
        try:
            process = await execs.exec_start(instance.id, detach=False)
        except Exception as err:
            # As dockerd: the failure is the stream's only output; the exec's exit code
            # (126) says the rest.
            message = f"{failure(request, err)[1]}\r\n".encode()
            await client.write(message if tty else stdcopy.frame(1, message))
            return client.response
        await relay(client, process, tty, instance.config.attach_stdin)
        return client.response

    async def post_exec_resize(request: web.Request) -> web.Response:
        await execs.exec_resize(request.match_info["id"], query_int(request, "h", 0) or 0,
                                query_int(request, "w", 0) or 0)
        return web.Response(status=200)

    async def get_exec_inspect(request: web.Request) -> web.Response:
        instance = execs.get(request.match_info["id"])
        config = instance.config
        cmd = list(config.cmd or ())
        return json_response({
            "ID": instance.id, "Running": instance.running, "ExitCode": instance.exit_code,
            "ProcessConfig": {"tty": config.tty, "entrypoint": cmd[0] if cmd else "",
                              "arguments": cmd[1:], "privileged": config.privileged,
                              "user": config.user},
            "OpenStdin": config.attach_stdin, "OpenStderr": config.attach_stderr,
            "OpenStdout": config.attach_stdout, "CanRemove": False,
            "ContainerID": instance.container_id, "DetachKeys": config.detach_keys,
            "Pid": instance.pid})

    add_route(app, "POST", "/containers/{name}/exec", post_container_exec_create)
    add_route(app, "POST", "/exec/{id}/start", tracked(app, post_exec_start))
    add_route(app, "POST", "/exec/{id}/resize", post_exec_resize)
    add_route(app, "GET", "/exec/{id}/json", get_exec_inspect)
