"""The containers list, its actions, the run dialog's create, and one container's page."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from moorage.dashboard import rows
from moorage.dashboard.keys import ENGINE
from moorage.dashboard.pages.forms import lines, pairs, port_bindings
from moorage.dashboard.render import template

# Rows in the page as first sent: more than a tall screen shows. The browser lays out every
# row of a table before its first paint (200 rows: 50-100 ms of layout, most of the time
# to the first paint); the page fetches the rows after these once it has painted.
FIRST_ROWS = 50
ACTIONS = ("start", "stop", "restart", "pause", "unpause", "kill")
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")


def browser_host(request: web.Request) -> str:
    return request.url.host or "127.0.0.1"


async def container_rows(request: web.Request) -> list[rows.ContainerRow]:
    found = await request.app[ENGINE].get("/containers/json", {"all": True})
    return [rows.container_row(doc, browser_host(request)) for doc in found]


@template("containers.html")
async def index(request: web.Request) -> dict[str, Any]:
    listed = rows.listed(await container_rows(request))
    # ?all: the whole table in the page, for a browser without JavaScript to fetch the rest
    first = listed if "all" in request.query else listed[:FIRST_ROWS]
    return {"groups": rows.grouped(first), "total": len(listed),
            "rest": first[-1] if len(listed) > len(first) else None}


@template("container_groups.html")
async def rest(request: web.Request) -> dict[str, Any]:
    """The rows listed after a given one, keyed by its place (not by a count: containers
    come and go between the page and this request)."""
    last = rows.order(request.query.get("project", ""), request.query.get("name", ""))
    return {"groups": rows.grouped([r for r in await container_rows(request)
                                    if rows.order(r.project, r.name) > last]),
            "rest_only": True}


@template("container_table.html")
async def fragment(request: web.Request) -> dict[str, Any]:
    return {"groups": rows.grouped(await container_rows(request))}


async def action(request: web.Request) -> web.Response:
    verb = request.match_info["action"]
    if verb not in ACTIONS:
        raise web.HTTPNotFound(text=f"unknown action {verb!r}")
    await request.app[ENGINE].post(f"/containers/{request.match_info['id']}/{verb}")
    return web.Response(status=204)


async def remove(request: web.Request) -> web.Response:
    await request.app[ENGINE].delete(f"/containers/{request.match_info['id']}",
                                     {"force": True, "v": True})
    return web.Response(status=204)


async def run(request: web.Request) -> web.Response:
    """The run dialog: create and start, then the container's page."""
    form = await request.post()
    image = str(form.get("image", "")).strip()
    if not image:
        raise web.HTTPBadRequest(text="an image is needed")
    exposed, bindings = port_bindings(lines(form.get("ports")))
    restart = str(form.get("restart", "no"))
    if restart not in RESTART_POLICIES:
        raise web.HTTPBadRequest(text=f"invalid restart policy {restart!r}")
    host_config: dict[str, Any] = {
        "PortBindings": bindings, "Binds": lines(form.get("volumes")),
        "RestartPolicy": {"Name": restart if restart != "no" else ""}}
    network = str(form.get("network", "")).strip()
    if network:
        host_config["NetworkMode"] = network
    body: dict[str, Any] = {"Image": image, "Env": [f"{k}={v}" for k, v in
                                                    pairs(lines(form.get("env"))).items()],
                            "ExposedPorts": exposed, "HostConfig": host_config,
                            "Tty": bool(form.get("tty"))}
    command = str(form.get("command", "")).split()
    if command:
        body["Cmd"] = command
    name = str(form.get("name", "")).strip()
    engine = request.app[ENGINE]
    created = await engine.post("/containers/create", {"name": name or None}, body)
    await engine.post(f"/containers/{created['Id']}/start")
    location = f"/containers/{created['Id']}"
    return web.Response(status=204, headers={"HX-Redirect": location})


@template("container.html")
async def detail(request: web.Request) -> dict[str, Any]:
    doc = await request.app[ENGINE].get(f"/containers/{request.match_info['id']}/json")
    config = doc.get("Config") or {}
    env = [item.partition("=") for item in config.get("Env") or []]
    networks = (doc.get("NetworkSettings") or {}).get("Networks") or {}
    published = [{"PrivatePort": int(key.split("/")[0]), "Type": key.split("/")[1],
                  "PublicPort": int(b["HostPort"]) if b.get("HostPort") else None,
                  "IP": b.get("HostIp")}
                 for key, binds in ((doc.get("NetworkSettings") or {}).get("Ports")
                                    or {}).items() for b in (binds or [{}])]
    return {"c": doc, "name": doc["Name"].lstrip("/"), "env": env, "networks": networks,
            "mounts": doc.get("Mounts") or [], "state": doc.get("State") or {},
            "ports": rows.ports(published, browser_host(request)),
            "tty": bool(config.get("Tty")), "labels": config.get("Labels") or {}}


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/containers", index)
    router.add_get("/containers/fragment", fragment)
    router.add_get("/containers/rest", rest)
    router.add_post("/containers/run", run)
    router.add_get("/containers/{id}", detail)
    router.add_post("/containers/{id}/{action}", action)
    router.add_delete("/containers/{id}", remove)
