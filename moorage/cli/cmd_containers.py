"""Container lifecycle and queries: start … wait, logs, inspect, top, port, stats, …"""

from __future__ import annotations

import sys

from moorage.cli.common import FORMAT, confirmed, filters, for_each, template
from moorage.cli.container_flags import RESOURCE_FLAGS
from moorage.cli.flags import BOOL, INT, LIST, STR, Spec, flag
from moorage.cli.output import indented_json, prune_report, save_stream, write
from moorage.cli.session import CommandError
from moorage.client.errors import APIError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from moorage.cli.flags import Options
    from moorage.cli.session import Session


def start(session: Session, opts: Options, args: list[str]) -> int:
    client = session.client
    if not (opts.attach or opts.interactive):
        return for_each(args, lambda c: (client.post(f"/containers/{c}/start"), c)[1])
    if len(args) > 1:
        raise CommandError("you cannot start and attach multiple containers at once")
    from moorage.cli.interactive import stream
    from moorage.cli.start_errors import start_error

    info = client.get(f"/containers/{args[0]}/json")

    def go() -> None:
        try:
            client.post(f"/containers/{info['Id']}/start")
        except APIError as err:
            raise start_error(err) from None

    if stream(session, info["Id"], stdin=opts.interactive and info["Config"]["OpenStdin"],
              tty=info["Config"]["Tty"], detach_keys=opts.detach_keys, start=go):
        return 0
    result = client.post(f"/containers/{info['Id']}/wait") or {}
    return int(result.get("StatusCode", 0))


def _timeout(opts: Options) -> dict[str, Any]:
    return {"t": opts.timeout, "signal": getattr(opts, "signal", None)}


def stop(session: Session, opts: Options, args: list[str]) -> int:
    return for_each(args, lambda c: (session.client.post(f"/containers/{c}/stop",
                                                         _timeout(opts)), c)[1])


def restart(session: Session, opts: Options, args: list[str]) -> int:
    return for_each(args, lambda c: (session.client.post(f"/containers/{c}/restart",
                                                         _timeout(opts)), c)[1])


def kill(session: Session, opts: Options, args: list[str]) -> int:
    return for_each(args, lambda c: (session.client.post(f"/containers/{c}/kill",
                                                         {"signal": opts.signal}), c)[1])


def rm(session: Session, opts: Options, args: list[str]) -> int:
    params = {"force": opts.force, "v": opts.volumes, "link": opts.link}
    return for_each(args, lambda c: (session.client.delete(f"/containers/{c}", params), c)[1])


def pause(session: Session, _opts: Options, args: list[str]) -> int:
    return for_each(args, lambda c: (session.client.post(f"/containers/{c}/pause"), c)[1])


def unpause(session: Session, _opts: Options, args: list[str]) -> int:
    return for_each(args, lambda c: (session.client.post(f"/containers/{c}/unpause"), c)[1])


def rename(session: Session, _opts: Options, args: list[str]) -> int:
    try:
        session.client.post(f"/containers/{args[0]}/rename", {"name": args[1]})
    except APIError as err:
        sys.stderr.write(f"Error response from daemon: {err.message}\n")
        raise CommandError(f"Error: failed to rename container named {args[0]}") from None
    return 0


def wait(session: Session, _opts: Options, args: list[str]) -> int:
    return for_each(args, lambda c: str(
        (session.client.post(f"/containers/{c}/wait") or {}).get("StatusCode", 0)))


def logs(session: Session, opts: Options, args: list[str]) -> int:
    from moorage.client.api import demux

    client = session.client
    tty = client.get(f"/containers/{args[0]}/json")["Config"]["Tty"]
    params = {"stdout": 1, "stderr": 1, "follow": opts.follow, "timestamps": opts.timestamps,
              "tail": opts.tail, "since": opts.since, "until": opts.until,
              "details": opts.details}
    chunks = client.stream_raw("GET", f"/containers/{args[0]}/logs", params)
    out, err = sys.stdout.buffer, sys.stderr.buffer
    if tty:
        for data in chunks:
            out.write(data)
            out.flush()
        return 0
    for fd, payload in demux(chunks):
        stream = err if fd == 2 else out
        stream.write(payload)
        stream.flush()
    return 0


def inspect(session: Session, opts: Options, args: list[str]) -> int:
    """Containers first, then images (docker's `inspect` without --type)."""
    client = session.client
    kind = getattr(opts, "type", None) or ("container" if session.command.startswith(
        "container") else None)
    found: list[Any] = []
    missing = []
    for name in args:
        paths = {"container": [f"/containers/{name}/json"], "image": [f"/images/{name}/json"],
                 None: [f"/containers/{name}/json", f"/images/{name}/json"]}[kind]
        for path in paths:
            try:
                found.append(client.get(path, {"size": opts.size or None}))
                break
            except APIError as err:
                if err.status != 404:
                    raise
        else:
            missing.append(name)
    _print_inspect(found, opts.format)
    for name in missing:
        what = {"container": "container", "image": "image"}.get(kind or "", "object")
        sys.stderr.write(f"Error: No such {what}: {name}\n")
    return 1 if missing else 0


def _print_inspect(found: list[Any], fmt: str | None) -> None:
    if fmt:
        write("".join(template(fmt, item) + "\n" for item in found))
    else:
        write(indented_json(found) + "\n")


def top(session: Session, _opts: Options, args: list[str]) -> int:
    params = {"ps_args": " ".join(args[1:])} if args[1:] else None
    result = session.client.get(f"/containers/{args[0]}/top", params)
    lines = ["\t".join(result["Titles"])]
    lines += ["\t".join(process) for process in result.get("Processes") or []]
    # docker's top uses a wider tabwriter (minwidth 20, padding 1).
    rows = [line.split("\t") for line in lines]
    widths = [max(max(len(r[i]) + 1, 20) for r in rows if i < len(r) - 1)
              for i in range(max(len(r) for r in rows) - 1)]
    write("".join("".join(c.ljust(widths[i]) for i, c in enumerate(r[:-1])) + r[-1] + "\n"
                  for r in rows))
    return 0


def port(session: Session, _opts: Options, args: list[str]) -> int:
    info = session.client.get(f"/containers/{args[0]}/json")
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    wanted = args[1] if len(args) > 1 else None
    if wanted and "/" not in wanted:
        wanted += "/tcp"
    lines = []
    for private, bindings in sorted(ports.items()):
        if wanted and private != wanted:
            continue
        for b in bindings or []:
            ip = b.get("HostIp") or "0.0.0.0"
            address = f"[{ip}]:{b['HostPort']}" if ":" in ip else f"{ip}:{b['HostPort']}"
            lines.append(address if wanted else f"{private} -> {address}")
    if wanted and not lines:
        raise CommandError(f"Error: No public port '{wanted}' published for {args[0]}")
    write("".join(line + "\n" for line in lines))
    return 0


def diff(session: Session, _opts: Options, args: list[str]) -> int:
    changes = session.client.get(f"/containers/{args[0]}/changes") or []
    write("".join(f"{'CAD'[c['Kind']]} {c['Path']}\n" for c in changes))
    return 0


def export(session: Session, opts: Options, args: list[str]) -> int:
    save_stream(session.client.stream_raw("GET", f"/containers/{args[0]}/export"),
                opts.output)
    return 0


def commit(session: Session, opts: Options, args: list[str]) -> int:
    target = args[1] if len(args) > 1 else ""
    # The tag is after the last ":" of the last path element (a registry has a port).
    repo, tag = target, ""
    if ":" in target.rsplit("/", 1)[-1]:
        repo, _, tag = target.rpartition(":")
    params = {"container": args[0], "repo": repo or None, "tag": tag or None,
              "comment": opts.message, "author": opts.author, "pause": opts.pause,
              "changes": list(opts.change) or None}
    result = session.client.post("/commit", params, {})
    write(result["Id"] + "\n")
    return 0


def update(session: Session, opts: Options, args: list[str]) -> int:
    from moorage.cli.container_flags import resources, restart_policy

    body: dict[str, Any] = resources(opts)
    if opts.restart:
        body["RestartPolicy"] = restart_policy(opts.restart)
    return for_each(args, lambda c: (session.client.post(f"/containers/{c}/update",
                                                         body=body), c)[1])


def prune(session: Session, opts: Options, _args: list[str]) -> int:
    if not opts.force and not confirmed("This will remove all stopped containers."):
        return 0
    report = session.client.post("/containers/prune", {"filters": filters(opts.filter)}) or {}
    write(prune_report("Deleted Containers:", report.get("ContainersDeleted") or [],
                       report.get("SpaceReclaimed") or 0))
    return 0


_TIME = flag("t|timeout", INT, "Seconds to wait before killing the container")
_SIGNAL = flag("s|signal", STR, "Signal to send to the container")
_CONTAINERS = "[OPTIONS] CONTAINER [CONTAINER...]"
SPECS = {
    "start": Spec(_CONTAINERS, start, (
        flag("a|attach", BOOL, "Attach STDOUT/STDERR and forward signals"),
        flag("detach-keys", STR, "Override the key sequence for detaching a container"),
        flag("i|interactive", BOOL, "Attach container's STDIN")), min_args=1),
    "stop": Spec(_CONTAINERS, stop, (_SIGNAL, _TIME), min_args=1),
    "restart": Spec(_CONTAINERS, restart, (_SIGNAL, _TIME), min_args=1),
    "kill": Spec(_CONTAINERS, kill, (flag("s|signal", STR, "Signal to send to the container"),),
                 min_args=1),
    "rm": Spec(_CONTAINERS, rm, (
        flag("f|force", BOOL, "Force the removal of a running container (uses SIGKILL)"),
        flag("l|link", BOOL, "Remove the specified link"),
        flag("v|volumes", BOOL, "Remove anonymous volumes associated with the container")),
        min_args=1, aliases=("moor container rm", "moor container remove", "moor rm")),
    "pause": Spec("CONTAINER [CONTAINER...]", pause, min_args=1),
    "unpause": Spec("CONTAINER [CONTAINER...]", unpause, min_args=1),
    "rename": Spec("CONTAINER NEW_NAME", rename, min_args=2, max_args=2),
    "wait": Spec("CONTAINER [CONTAINER...]", wait, min_args=1),
    "logs": Spec("[OPTIONS] CONTAINER", logs, (
        flag("details", BOOL, "Show extra details provided to logs"),
        flag("f|follow", BOOL, "Follow log output"),
        flag("since", STR, "Show logs since timestamp or relative (e.g. 42m for 42 minutes)"),
        flag("n|tail", STR, 'Number of lines to show from the end of the logs', "all"),
        flag("t|timestamps", BOOL, "Show timestamps"),
        flag("until", STR, "Show logs before a timestamp or relative")),
        min_args=1, max_args=1),
    "inspect": Spec("[OPTIONS] NAME|ID [NAME|ID...]", inspect, (
        FORMAT, flag("s|size", BOOL, "Display total file sizes if the type is container"),
        flag("type", STR, "Only inspect objects of the given type")), min_args=1),
    "top": Spec("CONTAINER [ps OPTIONS]", top, min_args=1, interspersed=False),
    "port": Spec("CONTAINER [PRIVATE_PORT[/PROTO]]", port, min_args=1, max_args=2),
    "diff": Spec("CONTAINER", diff, min_args=1, max_args=1),
    "export": Spec("[OPTIONS] CONTAINER", export, (
        flag("o|output", STR, "Write to a file, instead of STDOUT"),), min_args=1, max_args=1),
    "commit": Spec("[OPTIONS] CONTAINER [REPOSITORY[:TAG]]", commit, (
        flag("a|author", STR, 'Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")'),
        flag("c|change", LIST, "Apply Dockerfile instruction to the created image"),
        flag("m|message", STR, "Commit message"),
        flag("p|pause", BOOL, "Pause container during commit", True)), min_args=1, max_args=2),
    "update": Spec(_CONTAINERS, update, (
        *RESOURCE_FLAGS,
        flag("restart", STR, "Restart policy to apply when a container exits")), min_args=1),
    "prune": Spec("[OPTIONS]", prune, (
        flag("filter", LIST, "Provide filter values (e.g. \"until=<timestamp>\")"),
        flag("f|force", BOOL, "Do not prompt for confirmation")), max_args=0),
}
