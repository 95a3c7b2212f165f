"""What the commands do on the engine, through the Engine API only: networks, volumes,
images, and the containers of each service converged in dependency order."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from moorage.client.credentials import auth_header
from moorage.client.errors import APIError
from moorage.compose import labels as L
from moorage.compose.errors import ComposeError
from moorage.compose.normalize import dependencies, dependency_order
from moorage.compose.progress import done, event, say
from moorage.compose.spec import create_body, endpoint, injected_files, refuse_unsupported

if TYPE_CHECKING:
    from moorage.client.api import Client
    from moorage.compose.loader import Project


def in_dependency_order(client: Client, services: dict[str, dict[str, Any]],
                        work: Callable[[Client, str], None], reverse: bool = False) -> None:
    """`work` for every service, concurrently, each once its dependencies are done (or, in
    reverse, its dependents): Compose v2's graph traversal. Each thread has its own
    connection; the first failure is raised once the others have finished, and the
    services that wait on a failed one are skipped."""
    after: dict[str, set[str]] = {n: set() for n in services}
    for name, svc in services.items():
        for dep in dependencies(svc):
            if dep in services:
                if reverse:
                    after[dep].add(name)
                else:
                    after[name].add(dep)
    done = {n: threading.Event() for n in services}
    failed: set[str] = set()
    errors: list[BaseException] = []

    def run(name: str) -> None:
        own = client.clone()
        try:
            for other in after[name]:
                done[other].wait()
            if failed & after[name]:
                failed.add(name)
                return
            work(own, name)
        except BaseException as err:  # reported by the caller's thread
            failed.add(name)
            errors.append(err)
        finally:
            own.close()
            done[name].set()
    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in services]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def restarting_dependents(depends: dict[str, dict[str, Any]], names: list[str]) -> set[str]:
    """The services whose depends_on names one of `names`, or one of those, with
    `restart: true` (`depends` maps a service to its depends_on): Compose v2 restarts them
    when it restarts or recreates a dependency."""
    found: set[str] = set()
    todo = list(names)
    while todo:
        dependency = todo.pop()
        for name, conditions in depends.items():
            if name not in found and (conditions.get(dependency) or {}).get("restart"):
                found.add(name)
                todo.append(name)
    return found


def label_depends(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each service's depends_on as its containers' label keeps it (`dep:condition:restart`),
    for the commands that work from the engine's containers, not the file."""
    depends: dict[str, dict[str, Any]] = {}
    for c in found:
        entries = [e.split(":") for e in c["Labels"].get(L.PREFIX + "depends_on", "").split(",")]
        depends[c["Labels"].get(L.SERVICE, "")] = {
            e[0]: {"condition": e[1], "restart": e[2] == "true"} for e in entries if len(e) == 3}
    return depends


def containers(client: Client, project: str, service: str | None = None,
               oneoff: bool | None = False, all: bool = True) -> list[dict[str, Any]]:
    """The project's containers (one-off ones with oneoff=True, both with None)."""
    wanted = [] if oneoff is None else [f"{L.ONEOFF}={'True' if oneoff else 'False'}"]
    if service:
        wanted.append(f"{L.SERVICE}={service}")
    found: list[dict[str, Any]] = client.get("/containers/json", {
        "all": all, "filters": L.project_filter(project, *wanted)})
    return sorted(found, key=lambda c: (c["Labels"].get(L.SERVICE, ""),
                                        int(c["Labels"].get(L.NUMBER, "0") or 0)))


def container_name(project: Project, name: str, number: int, oneoff_id: str = "") -> str:
    svc = project.services[name]
    if svc.get("container_name") and not oneoff_id:
        return str(svc["container_name"])
    if oneoff_id:
        return f"{project.name}-{name}-run-{oneoff_id[:12]}"
    return f"{project.name}-{name}-{number}"


def _replicas(svc: dict[str, Any], scale: dict[str, int], name: str) -> int:
    if name in scale:
        return scale[name]
    if "scale" in svc:
        return int(svc["scale"])
    return int((svc.get("deploy") or {}).get("replicas", 1))


# ---------------------------------------------------------------- networks and volumes

_IPAM = {"subnet": "Subnet", "ip_range": "IPRange", "gateway": "Gateway",
         "aux_addresses": "AuxiliaryAddresses"}
_NETWORK_KEYS = {"name", "driver", "driver_opts", "ipam", "internal", "attachable",
                 "enable_ipv6", "labels", "external"}


def ensure_networks(client: Client, project: Project) -> None:
    used = {n for s in project.services.values() if not s.get("network_mode")
            for n in (s.get("networks") or {})}
    for key, net in (project.model.get("networks") or {}).items():
        if key not in used:
            continue
        for option in net:
            if option not in _NETWORK_KEYS and not option.startswith("x-"):
                raise ComposeError(f"networks.{key}.{option}: not supported by moor compose "
                                   "yet")
        try:
            client.get(f"/networks/{net['name']}")
            continue
        except APIError as err:
            if err.status != 404:
                raise
        if net.get("external"):
            raise ComposeError(f"network {net['name']} declared as external, but could not "
                               "be found")
        body: dict[str, Any] = {
            "Name": net["name"], "Driver": net.get("driver", "bridge"),
            "Options": net.get("driver_opts") or {}, "Internal": bool(net.get("internal")),
            "Attachable": bool(net.get("attachable")), "EnableIPv6": bool(net.get("enable_ipv6")),
            "CheckDuplicate": True,
            "Labels": {**(net.get("labels") or {}), **L.for_resource(project.name, "network",
                                                                   key)}}
        if net.get("ipam"):
            ipam = net["ipam"]
            body["IPAM"] = {"Driver": ipam.get("driver", "default"),
                            "Options": ipam.get("options") or {},
                            "Config": [{_IPAM[k]: v for k, v in c.items()}
                                       for c in ipam.get("config") or ()]}
        event(f"Network {net['name']}", "Creating")
        client.post("/networks/create", body=body)
        event(f"Network {net['name']}", "Created")


def ensure_volumes(client: Client, project: Project) -> None:
    used = {v.get("source") for s in project.services.values()
            for v in s.get("volumes") or () if v.get("type") == "volume"}
    for key, vol in (project.model.get("volumes") or {}).items():
        if key not in used:
            continue
        try:
            client.get(f"/volumes/{vol['name']}")
            continue
        except APIError as err:
            if err.status != 404:
                raise
        if vol.get("external"):
            raise ComposeError(f"external volume \"{vol['name']}\" not found")
        event(f"Volume \"{vol['name']}\"", "Creating")
        client.post("/volumes/create", body={
            "Name": vol["name"], "Driver": vol.get("driver", "local"),
            "DriverOpts": vol.get("driver_opts") or {},
            "Labels": {**(vol.get("labels") or {}),
                       **L.for_resource(project.name, "volume", key)}})
        event(f"Volume \"{vol['name']}\"", "Created")


# ---------------------------------------------------------------- images

def image_id(client: Client, project: Project, name: str, pull: str | None = None,
             build: bool = False) -> str:
    """The image the service runs: built when asked (or when a build service has none yet),
    else the local one, else pulled."""
    from moorage.compose.build import build as build_image
    from moorage.compose.build import image_name

    svc = project.services[name]
    ref = image_name(project, name)
    policy = svc.get("pull_policy")
    if pull is None and policy:
        if policy not in ("always", "never", "missing", "if_not_present", "build"):
            raise ComposeError(f"services.{name}.pull_policy: {policy} is not supported by "
                               "moor compose yet")
        build = build or policy == "build"
        pull = {"if_not_present": "missing", "build": "missing"}.get(policy, policy)
    if build and "build" in svc:
        return build_image(client, project, name)
    if pull != "always":
        try:
            return str(client.get(f"/images/{ref}/json")["Id"])
        except APIError as err:
            if err.status != 404:
                raise
    if "build" in svc:
        return build_image(client, project, name)
    if pull == "never":
        event(name, "Error")
        raise ComposeError(f"No such image: {ref}")
    pull_image(client, ref, name, svc.get("platform"))
    return str(client.get(f"/images/{ref}/json")["Id"])


def pull_image(client: Client, ref: str, service: str, platform: str | None = None) -> None:
    image, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
    event(service, "Pulling")
    failed = ""
    try:
        for message in client.stream_json("POST", "/images/create",
                                          {"fromImage": image, "tag": tag,
                                           "platform": platform},
                                          headers=auth_header(ref)):
            failed = failed or message.get("error") or ""
    except APIError as err:
        failed = err.message
    if failed:  # the progress line names the service, as Compose v2's ✘ line
        event(service, "Error")
        raise ComposeError(f"Error response from daemon: {failed}")
    event(service, "Pulled")


# ---------------------------------------------------------------- containers

def _create(client: Client, project: Project, name: str, number: int, image: str,
            names: dict[str, str]) -> str:
    svc = project.services[name]
    cname = container_name(project, name, number)
    body = create_body(project, name, svc, number, image, cname, names)
    event(f"Container {cname}", "Creating")
    created = client.post("/containers/create", {"name": cname,
                                                 "platform": svc.get("platform")}, body=body)
    inject(client, created["Id"], injected_files(project, svc))
    networks = list((svc.get("networks") or {}) if not svc.get("network_mode") else ())
    for key in networks[1:]:
        client.post(f"/networks/{project.model['networks'][key]['name']}/connect", body={
            "Container": created["Id"],
            "EndpointConfig": endpoint(project, name, key, svc, cname)})
    event(f"Container {cname}", "Created")
    return str(created["Id"])


def inject(client: Client, cid: str, files: list[tuple[str, bytes, int]]) -> None:
    if not files:
        return
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, data, mode in files:
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    client.call("PUT", f"/containers/{cid}/archive", {"path": "/"}, data=buffer.getvalue(),
                headers={"Content-Type": "application/x-tar"})


def stop_containers(client: Client, found: list[dict[str, Any]]) -> None:
    for c in found:
        event(f"Container {c['Names'][0].lstrip('/')}", "Stopping")
        client.post(f"/containers/{c['Id']}/stop")
        event(f"Container {c['Names'][0].lstrip('/')}", "Stopped")


def _remove(client: Client, container: dict[str, Any], volumes: bool = False) -> None:
    name = container["Names"][0].lstrip("/")
    try:
        if container["State"] in ("running", "paused", "restarting"):
            stop_containers(client, [container])
        event(f"Container {name}", "Removing")
        client.delete(f"/containers/{container['Id']}", {"v": volumes, "force": True})
    except APIError as err:
        # A one-off `run --rm` container may remove itself meanwhile.
        if err.status != 404 and "already in progress" not in err.message:
            raise
    event(f"Container {name}", "Removed")


def wait_dependencies(client: Client, project: Project, name: str, wanted: set[str]) -> None:
    """Block until each of the service's depends_on conditions holds."""
    for dep, cond in (project.services[name].get("depends_on") or {}).items():
        if dep in wanted:
            _wait_condition(client, project, dep, cond["condition"])


def _wait_condition(client: Client, project: Project, dep: str, condition: str,
                    timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    waiting: list[str] = []
    while True:
        found = containers(client, project.name, dep)
        states = [client.get(f"/containers/{c['Id']}/json")["State"] for c in found]
        if condition == "service_started" or not states:
            return
        if not waiting:  # Compose v2's Waiting, then Healthy or Exited, on the dependency
            waiting = [f"Container {c['Names'][0].lstrip('/')}" for c in found]
            for resource in waiting:
                event(resource, "Waiting")
        if condition == "service_healthy":
            if any((s.get("Health") or {}).get("Status") == "unhealthy" for s in states):
                for resource in waiting:
                    event(resource, "Error")
                raise ComposeError(f"dependency failed to start: container "
                                   f"{found[0]['Names'][0].lstrip('/')} is unhealthy")
            if all(not s.get("Health") for s in states):
                raise ComposeError(f"container {found[0]['Names'][0].lstrip('/')} has no "
                                   "healthcheck configured")
            if all((s.get("Health") or {}).get("Status") == "healthy" for s in states):
                for resource in waiting:
                    event(resource, "Healthy")
                return
        elif condition == "service_completed_successfully":
            done = [s for s in states if s["Status"] == "exited"]
            if len(done) == len(states):
                bad = [s for s in done if s["ExitCode"] != 0]
                if bad:
                    for resource in waiting:
                        event(resource, "Error")
                    raise ComposeError(f"service \"{dep}\" didn't complete successfully: "
                                       f"exit {bad[0]['ExitCode']}")
                for resource in waiting:
                    event(resource, "Exited")
                return
        if time.monotonic() > deadline:
            raise ComposeError(f"timeout waiting for {dep} to be {condition}")
        time.sleep(0.2)


def up(client: Client, project: Project, services: list[str], *, recreate: str = "diverged",
       scale: dict[str, int] | None = None, remove_orphans: bool = False,
       start: bool = True, pull: str | None = None, build: bool = False) -> list[str]:
    """Converge the project; the containers that run (or would), in dependency order."""
    for name in services:
        if name not in project.services:
            raise ComposeError(f"no such service: {name}")
    wanted = _with_dependencies(project, services)
    for name in wanted:  # before the engine is asked anything
        refuse_unsupported(name, project.services[name])
    if remove_orphans:
        for c in containers(client, project.name):
            if c["Labels"].get(L.SERVICE) not in project.services:
                _remove(client, c)
    else:
        orphans = {c["Labels"].get(L.SERVICE) for c in containers(client, project.name)} \
            - set(project.services) - set(project.disabled)
        if orphans:
            say(f"WARN[0000] Found orphan containers ({', '.join(sorted(orphans))}) for this "
                "project. If you removed or renamed this service in your compose file, you "
                "can run this command with the --remove-orphans flag to clean it up.")
    dependency_order({n: project.services[n] for n in wanted})
    images: dict[str, str] = {}

    def resolve(own: Client, name: str) -> None:
        images[name] = image_id(own, project, name, pull, build)
    # Images first, all of them, as Compose v2: a missing one makes nothing.
    in_dependency_order(client, {n: {} for n in wanted}, resolve)
    ensure_networks(client, project)
    ensure_volumes(client, project)
    names = {n: container_name(project, n, 1) for n in project.services}
    ids: dict[str, list[str]] = {}

    depends = {n: project.services[n].get("depends_on") or {} for n in wanted}

    def one(own: Client, name: str) -> None:
        svc = project.services[name]
        image = images[name]
        if start:
            wait_dependencies(own, project, name, wanted)
        ids[name] = _converge(own, project, name, image, recreate,
                              _replicas(svc, scale or {}, name), names, start,
                              restarting_dependents(depends, [name]))
    try:
        in_dependency_order(client, {n: project.services[n] for n in wanted}, one)
    finally:
        done()  # attached logs, watch's messages or the error go below the block
    return [i for n in sorted(ids) for i in ids[n]]


def _with_dependencies(project: Project, services: list[str]) -> set[str]:
    wanted: set[str] = set()
    todo = list(services or project.services)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo += [d for d in dependencies(project.services[name])
                     if d in project.services]
    return wanted


def _converge(client: Client, project: Project, name: str, image: str, recreate: str,
              replicas: int, names: dict[str, str], start: bool,
              dependents: set[str]) -> list[str]:
    """`dependents` (depends_on this service with `restart: true`) are stopped before it is
    recreated; their own turn, later in dependency order, starts them again."""
    svc = project.services[name]
    digest = L.config_hash(svc)
    existing = containers(client, project.name, name)
    ids = []
    for c in existing[replicas:]:
        _remove(client, c)
    for c in existing[:replicas]:
        stale = c["Labels"].get(L.HASH) != digest or c["Labels"].get(L.PREFIX + "image") != image
        number = int(c["Labels"].get(L.NUMBER, "1"))
        if recreate == "force" or (recreate == "diverged" and stale):
            for dependent in sorted(dependents):
                stop_containers(client, containers(client, project.name, dependent, all=False))
            dependents = set()
            event(f"Container {c['Names'][0].lstrip('/')}", "Recreate")
            _remove(client, c)
            ids.append(_create(client, project, name, number, image, names))
        else:
            event(f"Container {c['Names'][0].lstrip('/')}",
                  "Running" if c["State"] == "running" else "Created")
            ids.append(c["Id"])
    used = {int(c["Labels"].get(L.NUMBER, "0")) for c in existing[:replicas]}
    number = 1
    while len(ids) < replicas:
        if number not in used:
            ids.append(_create(client, project, name, number, image, names))
        number += 1
    if start:
        for cid in ids:
            info = client.get(f"/containers/{cid}/json")
            if not info["State"]["Running"]:
                event(f"Container {info['Name'].lstrip('/')}", "Starting")
                try:
                    client.post(f"/containers/{cid}/start")
                except APIError as err:
                    raise ComposeError(f"Error response from daemon: {err.message}") from None
                event(f"Container {info['Name'].lstrip('/')}", "Started")
    return ids


def _remove_project_objects(client: Client, project: Project, kind: str, title: str) -> None:
    """The project's own networks or volumes (not the external ones); gone already is fine."""
    for item in (project.model.get(kind) or {}).values():
        if item.get("external"):
            continue
        try:
            client.delete(f"/{kind}/{item['name']}")
            event(f"{title} {item['name']}", "Removed")
        except APIError as err:
            if err.status != 404:
                raise


def down(client: Client, project: Project, *, volumes: bool = False, rmi: str | None = None,
         remove_orphans: bool = False) -> None:
    found = containers(client, project.name, oneoff=None)
    by_service: dict[str, list[dict[str, Any]]] = {}
    for c in found:
        service = c["Labels"].get(L.SERVICE, "")
        if service in project.services or service in project.disabled or remove_orphans:
            by_service.setdefault(service, []).append(c)
    graph = {n: project.services.get(n) or project.disabled.get(n) or {} for n in by_service}

    def one(own: Client, name: str) -> None:
        for c in by_service[name]:
            _remove(own, c)
    in_dependency_order(client, graph, one, reverse=True)
    _remove_project_objects(client, project, "networks", "Network")
    if volumes:
        _remove_project_objects(client, project, "volumes", "Volume")
    if rmi:
        for name, svc in project.services.items():
            if rmi == "local" and svc.get("image"):
                continue
            ref = svc.get("image") or f"{project.name}-{name}"
            try:
                client.delete(f"/images/{ref}")
                event(f"Image {ref}", "Removed")
            except APIError as err:
                if err.status not in (404, 409):
                    raise
