"""`moor compose` / `moor-compose`: options, then one command over the project."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from moorage.client.errors import APIError, ConnectionFailed, EndpointError
from moorage.compose import labels as L
from moorage.compose.errors import ComposeError

if TYPE_CHECKING:
    from moorage.client.api import Client
    from moorage.compose.loader import Project



class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # cobra's and Compose v2's words
        unknown = re.match(r"argument command: invalid choice: '([^']*)'", message)
        if unknown:
            raise ComposeError(f'unknown docker command: "compose {unknown.group(1)}"')
        raise ComposeError(message.replace("unrecognized arguments:", "unknown flag:"))


def _parser(prog: str) -> _Parser:
    p = _Parser(prog=prog, add_help=True,
                description="Define and run multi-container applications")
    p.add_argument("-f", "--file", action="append", default=[])
    p.add_argument("-p", "--project-name")
    p.add_argument("--project-directory")
    p.add_argument("--env-file", action="append", default=[])
    p.add_argument("--profile", action="append", default=[])
    p.add_argument("-H", "--host")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    c = sub.add_parser("config")
    c.add_argument("--services", action="store_true")
    c.add_argument("--volumes", action="store_true")
    c.add_argument("--format", choices=["yaml", "json"], default="yaml")
    c.add_argument("-q", "--quiet", action="store_true")
    for name in ("up", "create"):
        u = sub.add_parser(name)
        if name == "up":
            u.add_argument("-d", "--detach", action="store_true")
            u.add_argument("--wait", action="store_true")
            u.add_argument("--abort-on-container-exit", action="store_true")
            u.add_argument("--exit-code-from")
        u.add_argument("--build", action="store_true")
        u.add_argument("--force-recreate", action="store_true")
        u.add_argument("--no-recreate", action="store_true")
        u.add_argument("--remove-orphans", action="store_true")
        u.add_argument("--scale", action="append", default=[])
        u.add_argument("--pull", choices=["always", "missing", "never"])
        u.add_argument("services", nargs="*")
    d = sub.add_parser("down")
    d.add_argument("-v", "--volumes", action="store_true")
    d.add_argument("--rmi", choices=["local", "all"])
    d.add_argument("--remove-orphans", action="store_true")
    ps = sub.add_parser("ps")
    ps.add_argument("-a", "--all", action="store_true")
    ps.add_argument("-q", "--quiet", action="store_true")
    ps.add_argument("--services", action="store_true", dest="list_services")
    ps.add_argument("--format", choices=["table", "json"], default="table")
    ps.add_argument("services", nargs="*")
    lg = sub.add_parser("logs")
    lg.add_argument("-f", "--follow", action="store_true")
    lg.add_argument("--no-color", action="store_true")
    lg.add_argument("-t", "--timestamps", action="store_true")
    lg.add_argument("-n", "--tail", default="all")
    lg.add_argument("services", nargs="*")
    for name in ("exec", "run"):
        e = sub.add_parser(name)
        e.add_argument("-T", "--no-TTY", action="store_true", dest="no_tty")
        e.add_argument("-d", "--detach", action="store_true")
        e.add_argument("-u", "--user")
        e.add_argument("-w", "--workdir")
        e.add_argument("-e", "--env", action="append", default=[])
        if name == "exec":
            e.add_argument("--index", type=int, default=1)
            e.add_argument("--privileged", action="store_true")
        else:
            e.add_argument("--rm", action="store_true")
            e.add_argument("--name")
            e.add_argument("--entrypoint")
            e.add_argument("--no-deps", action="store_true")
        e.add_argument("service")
        e.add_argument("cmd", nargs=argparse.REMAINDER)
    for name in ("start", "pause", "unpause", "top", "images", "pull", "wait", "build",
                 "push"):
        sub.add_parser(name).add_argument("services", nargs="*")
    for name in ("stop", "restart"):
        s = sub.add_parser(name)
        s.add_argument("-t", "--timeout", type=int)
        s.add_argument("services", nargs="*")
        if name == "restart":
            s.add_argument("--no-deps", action="store_true")
    k = sub.add_parser("kill")
    k.add_argument("-s", "--signal", default="SIGKILL")
    k.add_argument("services", nargs="*")
    r = sub.add_parser("rm")
    r.add_argument("-f", "--force", action="store_true")
    r.add_argument("-s", "--stop", action="store_true")
    r.add_argument("-v", "--volumes", action="store_true")
    r.add_argument("services", nargs="*")
    pt = sub.add_parser("port")
    pt.add_argument("--protocol", default="tcp")
    pt.add_argument("--index", type=int, default=1)
    pt.add_argument("service")
    pt.add_argument("private_port")
    ls = sub.add_parser("ls")
    ls.add_argument("-a", "--all", action="store_true")
    ls.add_argument("-q", "--quiet", action="store_true")
    ls.add_argument("--format", choices=["table", "json"], default="table")
    ev = sub.add_parser("events")
    ev.add_argument("--json", action="store_true")
    ev.add_argument("services", nargs="*")
    cp = sub.add_parser("cp")
    cp.add_argument("-a", "--archive", action="store_true")
    cp.add_argument("-L", "--follow-link", action="store_true")
    cp.add_argument("--index", type=int, default=1)
    cp.add_argument("source")
    cp.add_argument("destination")
    v = sub.add_parser("version")
    v.add_argument("--short", action="store_true")
    w = sub.add_parser("watch")
    w.add_argument("--no-up", action="store_true")
    w.add_argument("services", nargs="*")
    return p


def _load(args: argparse.Namespace) -> Project:
    from moorage.compose.loader import Options, load

    project = load(Options(files=args.file, project_name=args.project_name,
                           project_dir=args.project_directory, env_files=args.env_file,
                           profiles=args.profile))
    _DEFINED.update(project.services, project.disabled)
    return project


# The services the loaded file defines: a service without containers is still known.
_DEFINED: set[str] = set()


def _project_name(args: argparse.Namespace) -> str:
    """Commands that act on existing containers need only the name when no file is found."""
    try:
        return _load(args).name
    except ComposeError:
        if args.project_name:
            return str(args.project_name)
        raise


def _selected(client: Client, project: str, services: list[str], all: bool = True,
              ) -> list[dict[str, Any]]:
    from moorage.compose.ops import containers

    found = containers(client, project, all=all)
    if services:
        known = _DEFINED | {c["Labels"].get(L.SERVICE) for c in found}
        for name in services:
            if name not in known:
                raise ComposeError(f"no such service: {name}")
        found = [c for c in found if c["Labels"].get(L.SERVICE) in services]
    return found


def _name(c: dict[str, Any]) -> str:
    return str(c["Names"][0].lstrip("/"))


def cmd_config(client: Callable[[], Client], args: argparse.Namespace) -> int:
    from moorage.compose import render

    project = _load(args)
    if args.quiet:
        return 0
    if args.services:
        sys.stdout.write("".join(f"{n}\n" for n in project.services))
    elif args.volumes:
        sys.stdout.write("".join(f"{n}\n" for n in project.model.get("volumes") or {}))
    else:
        sys.stdout.write(render.to_json(project.model) if args.format == "json"
                         else render.to_yaml(project.model))
    return 0


def cmd_up(client: Callable[[], Client], args: argparse.Namespace) -> int:
    from moorage.compose import ops

    if args.force_recreate and args.no_recreate:
        raise ComposeError("--force-recreate and --no-recreate are incompatible")
    project = _load(args)
    scale = {}
    for item in args.scale:
        name, _, count = item.partition("=")
        if name not in project.services:
            raise ComposeError(f"no such service: {name}")
        scale[name] = int(count)
    # --wait waits for a detached project (Compose v2: it implies --detach)
    attached = args.command == "up" and not args.detach and not args.wait
    if args.command == "up" and args.exit_code_from:
        args.abort_on_container_exit = True
        if args.exit_code_from not in project.services:
            raise ComposeError(f"no such service: {args.exit_code_from}")
    recreate = "force" if args.force_recreate else "never" if args.no_recreate else "diverged"
    c = client()
    ops.up(c, project, args.services, recreate=recreate, scale=scale,
           remove_orphans=args.remove_orphans, start=args.command == "up", pull=args.pull,
           build=args.build)
    if args.command == "up" and args.wait:
        _wait_healthy(c, project.name, args.services)
    if not attached:
        return 0
    return _attach_all(c, project, args)


def _wait_healthy(c: Client, project: str, services: list[str]) -> None:
    import time

    while True:
        states = [(_name(x), c.get(f"/containers/{x['Id']}/json")["State"])
                  for x in _selected(c, project, services)]
        for name, s in states:
            if (s["Status"] == "exited" and s["ExitCode"] != 0) \
                    or (s.get("Health") or {}).get("Status") == "unhealthy":
                raise ComposeError(f"container {name} is unhealthy" if s.get("Health")
                                   else f"container {name} exited ({s['ExitCode']})")
        if all((s["Running"] and (s.get("Health") or {}).get("Status", "healthy") == "healthy")
               or s["Status"] == "exited" for _, s in states):
            return
        time.sleep(0.2)


def _attach_all(c: Client, project: Project, args: argparse.Namespace) -> int:
    import signal

    from moorage.compose.streams import Printer, follow

    found = [x for x in _selected(c, project.name, args.services)
             if project.services.get(x["Labels"][L.SERVICE], {}).get("attach", True)]
    printer = Printer([_name(x) for x in found], sys.stdout.isatty())
    exited: list[tuple[str, int]] = []
    done = threading.Event()

    def watch(container: dict[str, Any]) -> None:
        own = c.clone()
        follow(own, container, printer, {"stdout": 1, "stderr": 1, "follow": 1, "tail": "all"})
        code = own.post(f"/containers/{container['Id']}/wait")["StatusCode"]
        sys.stdout.write(f"{_name(container)} exited with code {code}\n")
        exited.append((container["Labels"][L.SERVICE], code))
        if args.abort_on_container_exit or len(exited) == len(found):
            done.set()
    # Stop on SIGINT and SIGTERM even when started with them ignored (a script's `&` ignores
    # SIGINT): Compose's Go signal.Notify catches them in either case.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.default_int_handler)
    try:
        for container in found:
            threading.Thread(target=watch, args=(container,), daemon=True).start()
        done.wait()
    except KeyboardInterrupt:
        sys.stderr.write("Gracefully stopping... (press Ctrl+C again to force)\n")
        _stop_all(c, project)
        return 130
    if args.abort_on_container_exit:
        sys.stdout.write("Aborting on container exit...\n")
        _stop_all(c, project)
    if args.exit_code_from:
        return next((code for svc, code in exited if svc == args.exit_code_from), 0)
    return exited[0][1] if args.abort_on_container_exit and exited else 0


def _stop_all(c: Client, project: Project) -> None:
    """Stop the project's running containers, dependents first (what `up` does on exit)."""
    from moorage.compose.ops import in_dependency_order, stop_containers

    running: dict[str, list[dict[str, Any]]] = {}
    for x in _selected(c, project.name, [], all=False):
        running.setdefault(x["Labels"][L.SERVICE], []).append(x)

    def stop(own: Client, name: str) -> None:
        stop_containers(own, running.get(name, []))
    in_dependency_order(c, project.services, stop, reverse=True)


def cmd_down(client: Callable[[], Client], args: argparse.Namespace) -> int:
    from moorage.compose import ops

    ops.down(client(), _load(args), volumes=args.volumes, rmi=args.rmi,
             remove_orphans=args.remove_orphans)
    return 0


def _created(ts: int) -> str:
    import time

    ago = time.time() - ts
    for unit, seconds in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if ago >= seconds * 2:
            return f"{int(ago // seconds)} {unit} ago"
    return "About a minute ago" if ago >= 60 else f"{int(ago)} seconds ago"


def cmd_ps(client: Callable[[], Client], args: argparse.Namespace) -> int:
    found = _selected(client(), _project_name(args), args.services, all=args.all)
    if args.list_services:
        for svc in dict.fromkeys(x["Labels"][L.SERVICE] for x in found):
            sys.stdout.write(svc + "\n")
        return 0
    if args.quiet:
        sys.stdout.write("".join(x["Id"] + "\n" for x in found))
        return 0
    if args.format == "json":
        sys.stdout.write(json.dumps([{
            "ID": x["Id"], "Name": _name(x), "Image": x["Image"], "Command": x["Command"],
            "Project": x["Labels"][L.PROJECT], "Service": x["Labels"][L.SERVICE],
            "State": x["State"], "Status": x["Status"],
            "Publishers": [{"URL": p.get("IP", ""), "TargetPort": p["PrivatePort"],
                            "PublishedPort": p.get("PublicPort", 0), "Protocol": p["Type"]}
                           for p in x.get("Ports") or ()]} for x in found]) + "\n")
        return 0
    rows = [("NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS")]
    for x in found:
        command = x["Command"] if len(x["Command"]) <= 20 else x["Command"][:19] + "…"
        ports = ", ".join(
            f"{p.get('IP', '')}:{p['PublicPort']}->{p['PrivatePort']}/{p['Type']}"
            if p.get("PublicPort") else f"{p['PrivatePort']}/{p['Type']}"
            for p in x.get("Ports") or ())
        rows.append((_name(x), x["Image"], f'"{command}"', x["Labels"][L.SERVICE],
                     _created(x["Created"]), x["Status"], ports))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        sys.stdout.write("   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True))
                         .rstrip() + "\n")
    return 0


def cmd_logs(client: Callable[[], Client], args: argparse.Namespace) -> int:
    from moorage.compose.streams import Printer, follow

    c = client()
    found = _selected(c, _project_name(args), args.services)
    printer = Printer([_name(x) for x in found], sys.stdout.isatty() and not args.no_color)
    params = {"stdout": 1, "stderr": 1, "follow": args.follow, "timestamps": args.timestamps,
              "tail": args.tail}
    threads = [threading.Thread(target=follow, args=(c.clone(), x, printer, params),
                                daemon=True) for x in found]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return 0


def cmd_exec(client: Callable[[], Client], args: argparse.Namespace) -> int:
    from moorage.compose.streams import relay

    c = client()
    project = _project_name(args)
    found = [x for x in _selected(c, project, [args.service], all=False)
             if x["Labels"].get(L.NUMBER) == str(args.index)]
    if not found:
        raise ComposeError(f"service \"{args.service}\" is not running")
    if not args.cmd:
        raise ComposeError('"docker compose exec" requires at least 2 arguments.')
    tty = not args.no_tty and sys.stdin.isatty() and sys.stdout.isatty()
    body = {"Cmd": args.cmd, "AttachStdin": not args.detach, "AttachStdout": not args.detach,
            "AttachStderr": not args.detach, "Tty": tty, "Env": args.env,
            "User": args.user or "", "WorkingDir": args.workdir or "",
            "Privileged": args.privileged}
    exec_id = c.post(f"/containers/{found[0]['Id']}/exec", body=body)["Id"]
    if args.detach:
        c.post(f"/exec/{exec_id}/start", body={"Detach": True, "Tty": tty})
        return 0
    sock, initial = c.hijack("POST", f"/exec/{exec_id}/start", body={"Detach": False,
                                                                     "Tty": tty})
    if tty:
        from moorage.compose.streams import interactive, terminal_size

        _resize(c, f"/exec/{exec_id}/resize", terminal_size())
        interactive(sock, initial)
    else:
        relay(sock, initial, False, True)
    return int(c.get(f"/exec/{exec_id}/json")["ExitCode"] or 0)


def _resize(c: Client, path: str, size: tuple[int, int]) -> None:
    """Best effort, as the docker CLI's first resize: a process that is already gone has no
    terminal left to size."""
    try:
        c.post(path, {"h": size[0], "w": size[1]})
    except APIError:
        pass


def cmd_run(client: Callable[[], Client], args: argparse.Namespace) -> int:
    import secrets as random

    from moorage.compose import ops
    from moorage.compose.spec import create_body
    from moorage.compose.streams import relay

    project = _load(args)
    if args.service not in project.services:
        raise ComposeError(f"no such service: {args.service}")
    c = client()
    svc = dict(project.services[args.service])
    from moorage.compose.normalize import dependencies

    deps = [] if args.no_deps else dependencies(svc)
    if deps:
        ops.up(c, project, deps)
        ops.wait_dependencies(c, project, args.service, set(deps))
    else:
        ops.ensure_networks(c, project)
        ops.ensure_volumes(c, project)
    image = ops.image_id(c, project, args.service)
    if args.cmd:
        svc["command"] = args.cmd
    if args.entrypoint is not None:
        import shlex

        svc["entrypoint"] = shlex.split(args.entrypoint)
    for item in args.env:
        k, _, v = item.partition("=")
        svc.setdefault("environment", {})[k] = v if _ else os.environ.get(k)
    if args.user:
        svc["user"] = args.user
    if args.workdir:
        svc["working_dir"] = args.workdir
    svc.pop("ports", None)  # run publishes nothing unless --service-ports
    tty = not args.no_tty and sys.stdin.isatty() and sys.stdout.isatty()
    svc["tty"] = tty or bool(svc.get("tty"))
    svc["restart"] = "no"
    suffix = random.token_hex(6)
    name = args.name or ops.container_name(project, args.service, 0, suffix)
    names = {n: ops.container_name(project, n, 1) for n in project.services}
    body = create_body(project, args.service, svc, 0, image, name, names, oneoff=True)
    del body["Labels"][L.NUMBER]
    body["Labels"][L.NUMBER] = "1"
    body["Labels"][L.PREFIX + "slug"] = suffix
    body.update({"AttachStdin": not args.detach, "AttachStdout": not args.detach,
                 "AttachStderr": not args.detach, "OpenStdin": not args.detach,
                 "StdinOnce": not args.detach})
    body["HostConfig"]["AutoRemove"] = bool(args.rm)
    cid = c.post("/containers/create", {"name": name}, body=body)["Id"]
    from moorage.compose.spec import injected_files

    ops.inject(c, cid, injected_files(project, svc))
    if args.detach:
        c.post(f"/containers/{cid}/start")
        sys.stdout.write(name + "\n")
        return 0
    sock, initial = c.hijack("POST", f"/containers/{cid}/attach",
                             {"stream": 1, "stdin": 1, "stdout": 1, "stderr": 1})
    waiter = c.clone()
    response = waiter.request("POST", f"/containers/{cid}/wait", {"condition": "next-exit"})
    c.post(f"/containers/{cid}/start")
    if tty:
        from moorage.compose.streams import interactive, terminal_size

        _resize(c, f"/containers/{cid}/resize", terminal_size())
        interactive(sock, initial)
    else:
        relay(sock, initial, bool(svc["tty"]), True)
    code = int(json.loads(response.read() or b"{}").get("StatusCode", 0))
    waiter.close()
    return code


def _each(verb: str, method: str, params: dict[str, Any] | None = None,
          states: tuple[str, ...] | None = None) -> Callable[..., int]:
    def run(client: Callable[[], Client], args: argparse.Namespace) -> int:
        from moorage.compose.progress import event

        c = client()
        found = _selected(c, _project_name(args), args.services)
        if verb in ("Stopping", "Killing", "Pausing"):
            found.reverse()
        for x in found:
            if states is not None and x["State"] not in states:
                continue
            event(f"Container {_name(x)}", verb)
            c.post(f"/containers/{x['Id']}/{method}", params)
            event(f"Container {_name(x)}", verb.replace("ing", "ed"))
        return 0
    return run


def cmd_stop(client: Callable[[], Client], args: argparse.Namespace) -> int:
    params = {"t": args.timeout} if args.timeout is not None else None
    return _each("Stopping", "stop", params, ("running", "paused", "restarting"))(client, args)


def cmd_restart(client: Callable[[], Client], args: argparse.Namespace) -> int:
    """The services named (all by default) and, unless --no-deps, those that depend on them
    with `restart: true`, in dependency order (Compose v2 keeps only those edges)."""
    from moorage.compose.ops import in_dependency_order, label_depends, restarting_dependents
    from moorage.compose.progress import event

    c = client()
    project = _project_name(args)
    _selected(c, project, args.services)  # an unknown service is refused
    everything = _selected(c, project, [])
    depends = label_depends(everything)
    wanted = set(args.services) or set(depends)
    if not args.no_deps:
        wanted |= restarting_dependents(depends, list(wanted))
    graph = {n: {"depends_on": {d: v for d, v in depends.get(n, {}).items()
                                if v["restart"] and d in wanted}} for n in wanted}
    params = {"t": args.timeout} if args.timeout is not None else None

    def restart(own: Client, name: str) -> None:
        for x in everything:
            if x["Labels"].get(L.SERVICE) == name:
                event(f"Container {_name(x)}", "Restarting")
                own.post(f"/containers/{x['Id']}/restart", params)
                event(f"Container {_name(x)}", "Started")
    in_dependency_order(c, graph, restart)
    return 0


def cmd_kill(client: Callable[[], Client], args: argparse.Namespace) -> int:
    return _each("Killing", "kill", {"signal": args.signal}, ("running",))(client, args)


def cmd_rm(client: Callable[[], Client], args: argparse.Namespace) -> int:
    from moorage.compose.progress import event, say

    c = client()
    found = _selected(c, _project_name(args), args.services)
    if args.stop:
        for x in found:
            if x["State"] == "running":
                c.post(f"/containers/{x['Id']}/stop")
        found = _selected(c, _project_name(args), args.services)
    gone = [x for x in found if x["State"] not in ("running", "paused", "restarting")]
    if not gone:
        say("No stopped containers")
        return 0
    if not args.force:
        names = ", ".join(_name(x) for x in gone)
        if not sys.stdin.isatty():
            raise ComposeError(f"Going to remove {names}: refusing without -f on a "
                               "non-interactive input")
        sys.stderr.write(f"Going to remove {names}\n? Are you sure? [y/N] ")
        if not sys.stdin.readline().strip().lower().startswith("y"):
            return 0
    for x in gone:
        event(f"Container {_name(x)}", "Removing")
        c.delete(f"/containers/{x['Id']}", {"v": args.volumes})
        event(f"Container {_name(x)}", "Removed")
    return 0


def cmd_start(client: Callable[[], Client], args: argparse.Namespace) -> int:
    from moorage.compose.normalize import dependency_order
    from moorage.compose.progress import event

    c = client()
    project = _load(args)
    found = _selected(c, project.name, args.services)
    rank = {n: i for i, n in enumerate(dependency_order(project.services))}
    found.sort(key=lambda x: rank.get(x["Labels"][L.SERVICE], 0))
    for x in found:
        if x["State"] != "running":
            event(f"Container {_name(x)}", "Starting")
            c.post(f"/containers/{x['Id']}/start")
            event(f"Container {_name(x)}", "Started")
    return 0


def cmd_top(client: Callable[[], Client], args: argparse.Namespace) -> int:
    c = client()
    for x in _selected(c, _project_name(args), args.services, all=False):
        top = c.get(f"/containers/{x['Id']}/top")
        sys.stdout.write(_name(x) + "\n")
        rows = [top["Titles"], *top["Processes"]]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            sys.stdout.write("   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True))
                             .rstrip() + "\n")
        sys.stdout.write("\n")
    return 0


def cmd_images(client: Callable[[], Client], args: argparse.Namespace) -> int:
    c = client()
    rows = [("CONTAINER", "REPOSITORY", "TAG", "IMAGE ID", "SIZE")]
    for x in _selected(c, _project_name(args), args.services):
        image = c.get(f"/images/{x['ImageID']}/json")
        tag = (image.get("RepoTags") or ["<none>:<none>"])[0]
        repo, _, version = tag.rpartition(":")
        rows.append((_name(x), repo, version, image["Id"].split(":")[1][:12],
                     _size(image["Size"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        sys.stdout.write("   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True))
                         .rstrip() + "\n")
    return 0


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.3g}{unit}"
        n /= 1000
    return f"{n:.3g}TB"


def cmd_pull(client: Callable[[], Client], args: argparse.Namespace) -> int:
    from moorage.compose.ops import pull_image

    project = _load(args)
    c = client()
    for name, svc in project.services.items():
        if (not args.services or name in args.services) and svc.get("image"):
            pull_image(c, svc["image"], name, svc.get("platform"))
    return 0


def _services(project: Project, names: list[str]) -> list[str]:
    for name in names:
        if name not in project.services:
            raise ComposeError(f"no such service: {name}")
    return names or list(project.services)


def cmd_build(client: Callable[[], Client], args: argparse.Namespace) -> int:
    from moorage.compose.build import build

    project = _load(args)
    c = client()
    for name in _services(project, args.services):
        if "build" in project.services[name]:
            build(c, project, name)
    return 0


def cmd_push(client: Callable[[], Client], args: argparse.Namespace) -> int:
    from moorage.client.credentials import auth_header
    from moorage.compose.build import image_name
    from moorage.compose.progress import event

    project = _load(args)
    c = client()
    for name in _services(project, args.services):
        if "build" not in project.services[name] and not args.services:
            continue
        ref = image_name(project, name)
        repo, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] \
            else (ref, "", "latest")
        event(name, "Pushing")
        # {} in base64 without credentials: the engine asks the registry anonymously
        headers = {"X-Registry-Auth": "e30=", **auth_header(ref)}
        for message in c.stream_json("POST", f"/images/{repo}/push", {"tag": tag},
                                     headers=headers):
            if message.get("error"):
                raise ComposeError(f"failed to push {ref}: {message['error']}")
        event(name, "Pushed")
    return 0


def cmd_wait(client: Callable[[], Client], args: argparse.Namespace) -> int:
    c = client()
    code = 0
    for x in _selected(c, _project_name(args), args.services):
        code = c.post(f"/containers/{x['Id']}/wait")["StatusCode"]
        sys.stdout.write(f"{code}\n")
    return int(code)


def cmd_port(client: Callable[[], Client], args: argparse.Namespace) -> int:
    c = client()
    found = [x for x in _selected(c, _project_name(args), [args.service])
             if x["Labels"].get(L.NUMBER) == str(args.index)]
    if not found:
        raise ComposeError(f"service \"{args.service}\" is not running")
    ports = c.get(f"/containers/{found[0]['Id']}/json")["NetworkSettings"]["Ports"] or {}
    bound = ports.get(f"{args.private_port}/{args.protocol}")
    if not bound:
        raise ComposeError(f"no port {args.private_port}/{args.protocol} for container "
                           f"{_name(found[0])}: not found")
    sys.stdout.write(f"{bound[0]['HostIp']}:{bound[0]['HostPort']}\n")
    return 0


def cmd_ls(client: Callable[[], Client], args: argparse.Namespace) -> int:
    c = client()
    found = c.get("/containers/json", {"all": True, "filters": {"label": [L.PROJECT]}})
    projects: dict[str, dict[str, Any]] = {}
    for x in found:
        p = projects.setdefault(x["Labels"][L.PROJECT], {"states": {}, "files": set()})
        p["states"][x["State"]] = p["states"].get(x["State"], 0) + 1
        p["files"].add(x["Labels"].get(L.PREFIX + "project.config_files", ""))
    rows = []
    for name in sorted(projects):
        states = projects[name]["states"]
        if not args.all and not states.get("running"):
            continue
        status = ", ".join(f"{s}({n})" for s, n in sorted(states.items()))
        rows.append((name, status, ",".join(sorted(projects[name]["files"]))))
    if args.quiet:
        sys.stdout.write("".join(r[0] + "\n" for r in rows))
    elif args.format == "json":
        sys.stdout.write(json.dumps([{"Name": r[0], "Status": r[1], "ConfigFiles": r[2]}
                                     for r in rows]) + "\n")
    else:
        table = [("NAME", "STATUS", "CONFIG FILES"), *rows]
        widths = [max(len(r[i]) for r in table) for i in range(3)]
        for r in table:
            sys.stdout.write("   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True))
                             .rstrip() + "\n")
    return 0


def cmd_events(client: Callable[[], Client], args: argparse.Namespace) -> int:
    import datetime

    project = _project_name(args)
    filters = {"type": ["container"], "label": [f"{L.PROJECT}={project}"]}
    for event in client().stream_json("GET", "/events", {"filters": filters}):
        attrs = dict((event.get("Actor") or {}).get("Attributes") or {})
        service = attrs.get(L.SERVICE, "")
        if args.services and service not in args.services:
            continue
        when = datetime.datetime.fromtimestamp(event["timeNano"] / 1e9)
        cid = event.get("id") or event["Actor"]["ID"]
        if args.json:
            line = json.dumps({"time": when.astimezone().isoformat(), "type": "container",
                               "action": event["Action"], "id": cid, "service": service,
                               "attributes": {k: v for k, v in attrs.items()
                                              if not k.startswith(L.PREFIX)}})
        else:
            shown = ", ".join(f"{k}={v}" for k, v in sorted(attrs.items())
                              if not k.startswith(L.PREFIX))
            line = (f"{when.strftime('%Y-%m-%d %H:%M:%S.%f')} container {event['Action']} "
                    f"{cid} ({shown})")
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    return 0


def cmd_cp(client: Callable[[], Client], args: argparse.Namespace) -> int:
    from moorage.compose.copy import from_container, to_container

    c = client()
    project = _project_name(args)
    src_service, _, src_path = args.source.partition(":") if ":" in args.source \
        else ("", "", args.source)
    dst_service, _, dst_path = args.destination.partition(":") \
        if ":" in args.destination else ("", "", args.destination)
    if bool(src_service) == bool(dst_service):
        raise ComposeError("copying between services is not supported" if src_service
                           else "invalid copy: one of the paths must be SERVICE:PATH")
    if args.follow_link:
        raise ComposeError("cp --follow-link: not supported by moor compose yet")
    service = src_service or dst_service
    found = [x for x in _selected(c, project, [service])
             if x["Labels"].get(L.NUMBER) == str(args.index)]
    if not found:
        raise ComposeError(f"no container found for service \"{service}\"")
    if src_service:
        from_container(c, found[0]["Id"], src_path, dst_path)
    else:
        to_container(c, found[0]["Id"], src_path, dst_path, args.archive)
    sys.stderr.write(f" {_name(found[0])} copy {args.source} to {args.destination} "
                     "Copied\n")
    return 0


def cmd_version(client: Callable[[], Client], args: argparse.Namespace) -> int:
    sys.stdout.write(L.COMPOSE_VERSION + "\n" if args.short
                     else f"Docker Compose version v{L.COMPOSE_VERSION} (moor compose)\n")
    return 0


def cmd_watch(client: Callable[[], Client], args: argparse.Namespace) -> int:
    from moorage.compose import ops
    from moorage.compose.watch import rules, watch

    project = _load(args)
    watched = rules(project, _services(project, args.services))
    c = client()
    if not args.no_up:
        ops.up(c, project, args.services)
    watch(c, project, watched)
    return 0


COMMANDS: dict[str, Callable[[Callable[[], Client], argparse.Namespace], int]] = {
    "config": cmd_config, "up": cmd_up, "create": cmd_up, "down": cmd_down, "ps": cmd_ps,
    "logs": cmd_logs, "exec": cmd_exec, "run": cmd_run, "start": cmd_start,
    "stop": cmd_stop, "restart": cmd_restart, "kill": cmd_kill, "rm": cmd_rm,
    "pause": _each("Pausing", "pause", None, ("running",)),
    "unpause": _each("Unpausing", "unpause", None, ("paused",)),
    "top": cmd_top, "images": cmd_images, "pull": cmd_pull, "wait": cmd_wait,
    "build": cmd_build, "push": cmd_push, "events": cmd_events, "cp": cmd_cp,
    "port": cmd_port, "ls": cmd_ls, "version": cmd_version,
    "watch": cmd_watch,
}


def main(argv: list[str], client: Callable[[], Client] | None = None) -> int:
    """Run one compose command; `client` is `moor`'s (global -H, --context) when given."""
    try:
        parser = _parser("moor compose" if client is not None else "moor-compose")
        if not argv:
            parser.print_help()
            return 0
        args = parser.parse_args(argv)
        if client is None or args.host:
            client = _standalone(args.host)
        return COMMANDS[args.command](client, args)
    except ComposeError as err:
        sys.stderr.write(err.message.rstrip("\n") + "\n")
        return err.code
    except APIError as err:
        sys.stderr.write(f"Error response from daemon: {err.message}\n")
        return 1
    except ConnectionFailed as err:
        sys.stderr.write(f"Cannot connect to the Docker daemon at {err.host}. Is the docker "
                         "daemon running?\n")
        return 1
    except EndpointError as err:
        sys.stderr.write(f"{err}\n")
        return 1
    except KeyboardInterrupt:
        return 130


def _standalone(host: str | None) -> Callable[[], Client]:
    box: list[Client] = []

    def make() -> Client:
        if not box:
            from moorage.client.api import Client
            from moorage.client.target import resolve

            box.append(Client(resolve(host, None, None)))
        return box[0]
    return make


def entry() -> None:
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
