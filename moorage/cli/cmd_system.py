"""version, info, events, system df/prune/check/dial-stdio."""

from __future__ import annotations

import os
import sys

from moorage import __version__
from moorage.cli.common import FORMAT, confirmed, filters, template
from moorage.cli.flags import BOOL, LIST, STR, Spec, flag
from moorage.cli.output import human_size, prune_report, write
from moorage.client.api import MAX_API_VERSION
from moorage.client.errors import APIError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from moorage.cli.flags import Options
    from moorage.cli.session import Session

_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def version(session: Session, opts: Options, _args: list[str]) -> int:
    client_doc = {
        "Version": __version__, "ApiVersion": MAX_API_VERSION,
        "DefaultAPIVersion": MAX_API_VERSION, "GitCommit": "",
        "GoVersion": "python" + ".".join(map(str, sys.version_info[:3])), "Os": "linux",
        "Arch": _ARCH.get(os.uname().machine, os.uname().machine), "BuildTime": "",
        "Context": session.client.endpoint.context,
    }
    server: dict[str, Any] | None = None
    failure: Exception | None = None
    try:
        client_doc["ApiVersion"] = session.client.version
        server = session.client.get("/version")
    except Exception as err:  # docker still prints the client half, then the error
        failure = err
    if opts.format:
        write(template(opts.format, {"Client": client_doc, "Server": server}) + "\n")
    else:
        write(_version_text(client_doc, server))
    if failure is not None:
        raise failure
    return 0


def _version_text(client: dict[str, Any], server: dict[str, Any] | None) -> str:
    api = client["ApiVersion"]
    if api != client["DefaultAPIVersion"]:
        api += f" (downgraded from {client['DefaultAPIVersion']})"
    lines = ["Client:", f" Version:           {client['Version']}",
             f" API version:       {api}",
             f" Python version:    {client['GoVersion']}",
             f" OS/Arch:           {client['Os']}/{client['Arch']}",
             f" Context:           {client['Context']}"]
    if server is not None:
        name = (server.get("Platform") or {}).get("Name", "")
        lines += ["", f"Server: {name}".rstrip()]
        for component in server.get("Components") or []:
            details = component.get("Details") or {}
            lines.append(f" {component['Name']}:")
            lines.append(f"  Version:          {component.get('Version', '')}")
            if component["Name"] == "Engine":
                lines += [f"  API version:      {details.get('ApiVersion', '')} "
                          f"(minimum version {details.get('MinAPIVersion', '')})",
                          f"  Go version:       {details.get('GoVersion', '')}",
                          f"  Git commit:       {details.get('GitCommit', '')}",
                          f"  Built:            {details.get('BuildTime', '')}",
                          f"  OS/Arch:          {details.get('Os', '')}/{details.get('Arch', '')}",
                          f"  Experimental:     {details.get('Experimental', 'false')}"]
            else:
                lines.append(f"  GitCommit:        {details.get('GitCommit', '')}")
    return "\n".join(lines) + "\n"


def info(session: Session, opts: Options, _args: list[str]) -> int:
    doc = session.client.get("/info")
    if opts.format:
        write(template(opts.format, doc) + "\n")
        return 0
    from moorage.cli.output import binary_size

    plugins = doc.get("Plugins") or {}
    lines = ["Client:", f" Version:    {__version__}",
             f" Context:    {session.client.endpoint.context}",
             f" Debug Mode: {str(bool(session.options.debug)).lower()}", "", "Server:",
             f" Containers: {doc.get('Containers', 0)}",
             f"  Running: {doc.get('ContainersRunning', 0)}",
             f"  Paused: {doc.get('ContainersPaused', 0)}",
             f"  Stopped: {doc.get('ContainersStopped', 0)}",
             f" Images: {doc.get('Images', 0)}",
             f" Server Version: {doc.get('ServerVersion', '')}",
             f" Storage Driver: {doc.get('Driver', '')}"]
    lines += [f"  {k}: {v}" for k, v in doc.get("DriverStatus") or []]
    lines += [f" Logging Driver: {doc.get('LoggingDriver', '')}",
              f" Cgroup Driver: {doc.get('CgroupDriver', '')}",
              f" Cgroup Version: {doc.get('CgroupVersion', '')}", " Plugins:",
              f"  Volume: {' '.join(plugins.get('Volume') or [])}",
              f"  Network: {' '.join(plugins.get('Network') or [])}",
              f"  Log: {' '.join(plugins.get('Log') or [])}",
              f" Swarm: {(doc.get('Swarm') or {}).get('LocalNodeState', 'inactive')}",
              f" Runtimes: {' '.join(sorted(doc.get('Runtimes') or {}))}",
              f" Default Runtime: {doc.get('DefaultRuntime', '')}",
              f" Init Binary: {doc.get('InitBinary', '')}",
              f" Kernel Version: {doc.get('KernelVersion', '')}",
              f" Operating System: {doc.get('OperatingSystem', '')}",
              f" OSType: {doc.get('OSType', '')}",
              f" Architecture: {doc.get('Architecture', '')}",
              f" CPUs: {doc.get('NCPU', 0)}",
              f" Total Memory: {binary_size(doc.get('MemTotal', 0))}",
              f" Name: {doc.get('Name', '')}", f" ID: {doc.get('ID', '')}",
              f" Docker Root Dir: {doc.get('DockerRootDir', '')}",
              f" Debug Mode: {str(doc.get('Debug', False)).lower()}",
              f" Experimental: {str(doc.get('ExperimentalBuild', False)).lower()}",
              " Insecure Registries:"]
    lines += [f"  {c}" for c in (doc.get("RegistryConfig") or {}).get("InsecureRegistryCIDRs")
              or []]
    lines.append(f" Live Restore Enabled: {str(doc.get('LiveRestoreEnabled', False)).lower()}")
    write("\n".join(lines) + "\n\n")
    return 0


def events(session: Session, opts: Options, _args: list[str]) -> int:
    params = {"since": _timestamp(opts.since), "until": _timestamp(opts.until),
              "filters": filters(opts.filter)}
    for event in session.client.stream_json("GET", "/events", params):
        if opts.format:
            write(template(opts.format, event) + "\n")
        else:
            nanos = event.get("timeNano") or event.get("time", 0) * 10**9
            write(f"{_rfc3339_nano(nanos)} {event.get('Type', '')} {event.get('Action', '')} "
                  f"{_event_attrs(event)}\n")
        sys.stdout.flush()
    return 0


def _timestamp(value: str | None) -> str | None:
    """docker's timetypes.GetTimestamp: a Go duration ("10m", "1h30m") counts back from
    now in whole seconds; an RFC 3339 time becomes UNIX seconds; numbers pass as they are."""
    import re
    import time
    from datetime import datetime

    if not value:
        return value
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", value)
    if value != "0" and parts and "".join(n + u for n, u in parts) == value:
        return str(int(time.time() - sum(float(n) * units[u] for n, u in parts)))
    if "T" in value or re.fullmatch(r"\d{4}-\d\d-\d\d", value):
        try:
            stamp = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return value
        return f"{stamp:.9f}"
    return value


def _rfc3339_nano(nanos: int) -> str:
    import time

    seconds, frac = divmod(int(nanos), 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"


def _event_attrs(event: dict[str, Any]) -> str:
    actor = event.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    text = actor.get("ID", "")
    if attrs:
        text += " (" + ", ".join(f"{k}={v}" for k, v in sorted(attrs.items())) + ")"
    return text


def df(session: Session, opts: Options, _args: list[str]) -> int:
    from moorage.cli.output import render

    doc = session.client.get("/system/df")
    if opts.verbose:
        write(_df_verbose(doc, opts.format))
        return 0
    images = doc.get("Images") or []
    containers = doc.get("Containers") or []
    volumes = doc.get("Volumes") or []
    cache = doc.get("BuildCache") or []
    image_size = sum(i.get("Size", 0) for i in images)
    active_images = sum(1 for i in images if i.get("Containers", 0) > 0)
    reclaim_images = sum(i.get("Size", 0) for i in images if i.get("Containers", 0) <= 0)
    running = [c for c in containers if c.get("State") == "running"]
    container_size = sum(c.get("SizeRw", 0) or 0 for c in containers)
    reclaim_containers = sum(c.get("SizeRw", 0) or 0 for c in containers
                             if c.get("State") != "running")
    volume_size = sum(max((v.get("UsageData") or {}).get("Size", 0), 0) for v in volumes)
    active_volumes = sum(1 for v in volumes if (v.get("UsageData") or {}).get("RefCount", 0))
    reclaim_volumes = sum(max((v.get("UsageData") or {}).get("Size", 0), 0) for v in volumes
                          if not (v.get("UsageData") or {}).get("RefCount", 0))
    cache_size = sum(c.get("Size", 0) for c in cache)

    def pct(part: int, whole: int) -> str:
        return f"{human_size(part, 4)} ({int(part * 100 / whole) if whole else 0}%)" \
            if whole else human_size(part, 4)

    rows = [("Images", len(images), active_images, image_size, pct(reclaim_images, image_size)),
            ("Containers", len(containers), len(running), container_size,
             pct(reclaim_containers, container_size)),
            ("Local Volumes", len(volumes), active_volumes, volume_size,
             pct(reclaim_volumes, volume_size)),
            ("Build Cache", len(cache), 0, cache_size, human_size(cache_size, 4))]
    write(render([{"Type": t, "TotalCount": str(n), "Active": str(a),
                   "Size": human_size(size, 4), "Reclaimable": r}
                  for t, n, a, size, r in rows], opts.format,
                 "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
                 {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
                  "Reclaimable": "RECLAIMABLE"}))
    return 0


def _df_verbose(doc: dict[str, Any], fmt: str | None) -> str:
    """docker system df -v: a table per kind, or the whole document through --format."""
    from moorage.cli.cmd_ps import row as container_row
    from moorage.cli.output import render, since, tabulate

    if fmt:
        return render([doc], fmt, "{{json .}}", {})
    out = ["Images space usage:\n\n"]
    lines = ["REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tSHARED SIZE\tUNIQUE SIZE\tCONTAINERS"]
    for image in doc.get("Images") or []:
        tags = image.get("RepoTags") or ["<none>:<none>"]
        for tag in tags:
            repo, _, name = tag.rpartition(":")
            shared = image.get("SharedSize", 0)
            lines.append(f"{repo}\t{name}\t{image['Id'].removeprefix('sha256:')[:12]}\t"
                         f"{since(image.get('Created', 0))}\t{human_size(image['Size'])}\t"
                         f"{human_size(shared)}\t{human_size(image['Size'] - shared, 4)}\t"
                         f"{image.get('Containers', 0)}")
    out.append(tabulate(lines) + "\nContainers space usage:\n\n")
    lines = ["CONTAINER ID\tIMAGE\tCOMMAND\tLOCAL VOLUMES\tSIZE\tCREATED\tSTATUS\tNAMES"]
    for container in doc.get("Containers") or []:
        shown = container_row(container, True)
        volumes = sum(1 for m in container.get("Mounts") or () if m.get("Type") == "volume")
        lines.append(f"{shown['ID']}\t{shown['Image']}\t{shown['Command']}\t{volumes}\t"
                     f"{human_size(container.get('SizeRw') or 0)}\t{shown['RunningFor']}\t"
                     f"{shown['Status']}\t{shown['Names']}")
    out.append(tabulate(lines) + "\nLocal Volumes space usage:\n\n")
    lines = ["VOLUME NAME\tLINKS\tSIZE"]
    for volume in doc.get("Volumes") or []:
        usage = volume.get("UsageData") or {}
        lines.append(f"{volume['Name']}\t{usage.get('RefCount', 0)}\t"
                     f"{human_size(usage.get('Size', 0))}")
    cache = sum(c.get("Size", 0) for c in doc.get("BuildCache") or [])
    out.append(tabulate(lines) + f"\nBuild cache usage: {human_size(cache)}\n\n")
    out.append(tabulate(["CACHE ID\tCACHE TYPE\tSIZE\tCREATED\tLAST USED\tUSAGE\tSHARED"]))
    return "".join(out)


def prune(session: Session, opts: Options, _args: list[str]) -> int:
    if not opts.force and not confirmed(
            "This will remove:\n  - all stopped containers\n"
            "  - all networks not used by at least one container\n"
            f"  - all {'' if opts.all else 'dangling '}images\n  - unused build cache\n"):
        return 0
    reclaimed = 0
    for path, key, params in (("/containers/prune", "ContainersDeleted", {}),
                              ("/networks/prune", "NetworksDeleted", {}),
                              ("/images/prune", "ImagesDeleted",
                               {"filters": {"dangling": ["false" if opts.all else "true"]}}),
                              ("/build/prune", "CachesDeleted", {})):
        try:
            report = session.client.post(path, params) or {}
        except APIError as err:
            if err.status != 404:  # an engine without networks yet: skip that part
                raise
            continue
        reclaimed += report.get("SpaceReclaimed", 0) or 0
        title = {"ContainersDeleted": "Deleted Containers:",
                 "NetworksDeleted": "Deleted Networks:", "ImagesDeleted": "Deleted Images:",
                 "CachesDeleted": "Deleted build cache objects:"}[key]
        write(prune_report(title, report.get(key) or []))
    write(prune_report("", [], reclaimed))
    return 0


def check(session: Session, opts: Options, _args: list[str]) -> int:
    """The engine's fsck (POST /moor/system/check): blobs, snapshots and references."""
    report = session.client.call("POST", "/moor/system/check",
                                 {"repair": "1" if opts.repair else None})
    if opts.format:
        write(template(opts.format, report) + "\n")
        return 0
    from moorage.cli.output import indented_json

    write(indented_json(report) + "\n")
    problems = (report or {}).get("Problems") if isinstance(report, dict) else None
    return 1 if problems and not opts.repair else 0


def dial_stdio(session: Session, _opts: Options, _args: list[str]) -> int:
    """The remote half of ssh://: relay stdin/stdout to the daemon's socket, both ways."""
    import selectors

    sock = session.client.endpoint.connect()
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ)
    selector.register(sock, selectors.EVENT_READ)
    open_ends = 2
    while open_ends:
        for key, _ in selector.select():
            if key.fileobj == 0:
                data = os.read(0, 65536)
                if data:
                    sock.sendall(data)
                    continue
                import socket

                sock.shutdown(socket.SHUT_WR)
            else:
                data = sock.recv(65536)
                if data:
                    os.write(1, data)
                    continue
            selector.unregister(key.fileobj)
            open_ends -= 1
            if key.fileobj is sock:  # the daemon is done: nothing more to relay
                return 0
    return 0


SPECS = {
    "version": Spec("[OPTIONS]", version, (FORMAT,), max_args=0),
    "info": Spec("[OPTIONS]", info, (FORMAT,), max_args=0),
    "events": Spec("[OPTIONS]", events, (
        flag("f|filter", LIST, "Filter output based on conditions provided"),
        flag("format", STR, "Format output using a custom template"),
        flag("since", STR, "Show all events created since timestamp"),
        flag("until", STR, "Stream events until this timestamp")), max_args=0),
    "df": Spec("[OPTIONS]", df, (FORMAT, flag("v|verbose", BOOL, "Show detailed information on "
                                                                 "space usage")), max_args=0),
    "prune": Spec("[OPTIONS]", prune, (
        flag("a|all", BOOL, "Remove all unused images not just dangling ones"),
        flag("f|force", BOOL, "Do not prompt for confirmation"),
        flag("volumes", BOOL, "Prune anonymous volumes"),
        flag("filter", LIST, "Provide filter values")), max_args=0),
    "check": Spec("[OPTIONS]", check, (
        flag("repair", BOOL, "Repair what can be repaired (drop broken references, "
                             "half-finished ingests)"), FORMAT), max_args=0),
    "dial_stdio": Spec("", dial_stdio, max_args=0),
}
