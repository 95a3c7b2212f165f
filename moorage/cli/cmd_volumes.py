"""`moor volume create/ls/inspect/rm/prune`, with the docker CLI's output."""

from __future__ import annotations

from moorage.cli.common import FILTER, confirmed, filters, for_each, inspect_each
from moorage.cli.flags import BOOL, LIST, STR, Spec, flag
from moorage.cli.output import natural_key, prune_report, render, write
from moorage.cli.session import CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from moorage.cli.flags import Options
    from moorage.cli.session import Session

DEFAULT = "table {{.Driver}}\t{{.Name}}"
HEADERS = {"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE"}


def _pairs(items: list[str], what: str) -> dict[str, str]:
    """`--label k=v` / `--opt k=v` as a map; a bare key maps to "" (docker's ListOpts)."""
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise CommandError(f'invalid argument "{item}" for "{what}" flag: invalid '
                               "key", 125)
        out[key] = value
    return out


def volume_create(session: Session, opts: Options, args: list[str]) -> int:
    if args and opts.name and args[0] != opts.name:
        raise CommandError("conflicting options: cannot specify a volume-name through "
                           "both --name and as a positional arg", 1)
    body = {"Name": args[0] if args else opts.name or "", "Driver": opts.driver,
            "DriverOpts": _pairs(opts.opt, "--opt"), "Labels": _pairs(opts.label, "--label")}
    write(session.client.post("/volumes/create", body=body)["Name"] + "\n")
    return 0


def _row(volume: dict[str, Any]) -> dict[str, Any]:
    """docker's volume formatter: its fields (sorted, as `{{json .}}` shows them) and
    `{{.Label "key"}}`."""
    from moorage.cli.cmd_ps import Row

    labels = volume.get("Labels") or {}
    usage = volume.get("UsageData")
    return Row({"Availability": "N/A", "Driver": volume["Driver"], "Group": "N/A",
                "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
                "Links": str(usage["RefCount"]) if usage else "N/A",
                "Mountpoint": volume["Mountpoint"], "Name": volume["Name"],
                "Scope": volume["Scope"], "Size": "N/A", "Status": "N/A"}, labels)


def volume_ls(session: Session, opts: Options, _args: list[str]) -> int:
    found = (session.client.get("/volumes", {"filters": filters(opts.filter)}) or {}).get(
        "Volumes") or []
    rows = [_row(v) for v in sorted(found, key=lambda v: natural_key(v["Name"]))]
    fmt = opts.format or ("{{.Name}}" if opts.quiet else None)
    write(render(rows, fmt, DEFAULT, HEADERS))
    return 0


def volume_inspect(session: Session, opts: Options, args: list[str]) -> int:
    return inspect_each(lambda name: session.client.get(f"/volumes/{name}"), args, opts.format)


def volume_rm(session: Session, opts: Options, args: list[str]) -> int:
    return for_each(args, lambda v: (session.client.delete(
        f"/volumes/{v}", {"force": "1" if opts.force else None}), v)[1])


def volume_prune(session: Session, opts: Options, _args: list[str]) -> int:
    which = "all" if opts.all else "anonymous"
    if not opts.force and not confirmed(
            f"This will remove {which} local volumes not used by at least one container."):
        return 0
    wanted = filters(opts.filter) or {}
    if opts.all:
        wanted["all"] = ["true"]
    report = session.client.post("/volumes/prune", {"filters": wanted or None}) or {}
    write(prune_report("Deleted Volumes:", report.get("VolumesDeleted") or [],
                       report.get("SpaceReclaimed") or 0))
    return 0


_FORMAT = flag("f|format", STR, "Format output using a custom template")
SPECS = {
    "volume_ls": Spec("[OPTIONS]", volume_ls, (
        FILTER, flag("format", STR, "Format output using a custom template"),
        flag("q|quiet", BOOL, "Only display volume names")), max_args=0),
    "volume_create": Spec("[OPTIONS] [VOLUME]", volume_create, (
        flag("d|driver", STR, "Specify volume driver name", "local"),
        flag("label", LIST, "Set metadata for a volume"),
        flag("name", STR, "Specify volume name", "", hidden=True),
        flag("o|opt", LIST, "Set driver specific options")), max_args=1),
    "volume_rm": Spec("[OPTIONS] VOLUME [VOLUME...]", volume_rm, (
        flag("f|force", BOOL, "Force the removal of one or more volumes"),), min_args=1),
    "volume_inspect": Spec("[OPTIONS] VOLUME [VOLUME...]", volume_inspect, (_FORMAT,),
                           min_args=1),
    "volume_prune": Spec("[OPTIONS]", volume_prune, (
        flag("a|all", BOOL, "Remove all unused volumes, not just anonymous ones"),
        flag("filter", LIST, 'Provide filter values (e.g. "label=<label>")'),
        flag("f|force", BOOL, "Do not prompt for confirmation")), max_args=0),
}
