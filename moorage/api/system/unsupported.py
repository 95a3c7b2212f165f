"""Endpoints of features moorage does not have, answered in Docker's words rather than
"page not found": swarm mode (as dockerd answers on a node that is in no swarm),
plugins (none installed, none can be), registry search.
"""

from __future__ import annotations

from aiohttp import web

from moorage.api.server import add_route, json_response
from moorage.errors import NotFound, NotImplementedYet, Unavailable

# moby's errNoSwarm and errSwarmNotManager
_NO_SWARM = ("This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm "
             "join\" to connect this node to swarm and try again.")
_NOT_IN_SWARM = "This node is not part of a swarm"
_SWARM_OBJECTS = ("nodes", "services", "tasks", "secrets", "configs")


async def not_a_manager(_request: web.Request) -> web.Response:
    raise Unavailable(_NO_SWARM)


async def not_in_a_swarm(_request: web.Request) -> web.Response:
    raise Unavailable(_NOT_IN_SWARM)


async def no_swarm_mode(_request: web.Request) -> web.Response:
    raise NotImplementedYet("swarm mode is not supported by moorage")


async def no_plugins(_request: web.Request) -> web.Response:
    return json_response([])


async def no_such_plugin(request: web.Request) -> web.Response:
    raise NotFound(f"plugin \"{request.match_info['name']}\" not found")


async def plugins_unsupported(_request: web.Request) -> web.Response:
    raise NotImplementedYet("plugins are not supported by moorage")


async def search_unsupported(_request: web.Request) -> web.Response:
    raise NotImplementedYet("searching a registry (docker search) is not supported by "
                            "moorage yet")


def add_routes(app: web.Application) -> None:
    add_route(app, "GET", "/swarm", not_a_manager)
    for path in ("/swarm/init", "/swarm/join"):
        add_route(app, "POST", path, no_swarm_mode)
    add_route(app, "POST", "/swarm/leave", not_in_a_swarm)
    for path in ("/swarm/update", "/swarm/unlock"):
        add_route(app, "POST", path, not_a_manager)
    add_route(app, "GET", "/swarm/unlockkey", not_a_manager)
    for kind in _SWARM_OBJECTS:
        for method in ("GET", "POST", "DELETE"):
            add_route(app, method, f"/{kind}", not_a_manager)
            add_route(app, method, f"/{kind}/{{tail:.+}}", not_a_manager)
    add_route(app, "GET", "/plugins", no_plugins)
    for path in ("/plugins/privileges", "/plugins/pull", "/plugins/create"):
        add_route(app, "GET" if path.endswith("privileges") else "POST", path,
                  plugins_unsupported)
    for method in ("GET", "POST", "DELETE"):
        add_route(app, method, "/plugins/{name}/{tail:.+}", no_such_plugin)
        add_route(app, method, "/plugins/{name}", no_such_plugin)
    add_route(app, "GET", "/images/search", search_unsupported)
