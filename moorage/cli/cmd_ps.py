"""ps / container ls: docker's columns, truncation and --format fields."""

from __future__ import annotations

from moorage.cli.common import FILTER, filters
from moorage.cli.flags import BOOL, INT, STR, Spec, flag
from moorage.cli.output import human_size, render, since, tabulate, write

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from moorage.cli.flags import Options
    from moorage.cli.session import Session

DEFAULT = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}"
           "\t{{.Names}}")
HEADERS = {"ID": "CONTAINER ID", "RunningFor": "CREATED", "CreatedAt": "CREATED AT",
           "LocalVolumes": "LOCAL VOLUMES"}


def _ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _go_quote(text: str) -> str:
    """strconv.Quote for the common characters."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped.replace(chr(9), chr(92) + "t")}"'


def ports(entries: list[dict[str, Any]]) -> str:
    """DisplayablePorts: "0.0.0.0:8080->80/tcp, 443/tcp", sorted like docker's."""
    shown = []
    for p in sorted(entries or [], key=lambda p: (p.get("PrivatePort", 0), p.get("Type", ""))):
        private = f"{p.get('PrivatePort')}/{p.get('Type', 'tcp')}"
        if p.get("PublicPort"):
            ip = p.get("IP", "")
            host = f"[{ip}]" if ":" in ip else ip
            shown.append(f"{host}:{p['PublicPort']}->{private}")
        else:
            shown.append(private)
    return ", ".join(dict.fromkeys(shown))


class Row(dict):  # type: ignore[type-arg]
    """One container's fields, and docker's ContainerContext method `{{.Label "key"}}`."""

    def __init__(self, fields: dict[str, Any], labels: dict[str, str]) -> None:
        super().__init__(fields)
        self._labels = labels

    def Label(self, name: str) -> str:  # spelt as templates call it
        return self._labels.get(name, "")


def row(c: dict[str, Any], trunc: bool) -> dict[str, Any]:
    from moorage.cli.output import go_time

    names = [n.lstrip("/") for n in c.get("Names") or []]
    command = c.get("Command", "")
    size = ""
    if "SizeRw" in c or "SizeRootFs" in c:
        size = human_size(c.get("SizeRw") or 0)
        if c.get("SizeRootFs"):
            size += f" (virtual {human_size(c['SizeRootFs'])})"
    image = c.get("Image", "")
    if trunc and image.startswith("sha256:"):
        image = image[7:19]
    labels = c.get("Labels") or {}
    networks = (c.get("NetworkSettings") or {}).get("Networks") or {}
    return Row({
        "ID": c["Id"][:12] if trunc else c["Id"],
        "Image": image,
        "Command": _go_quote(_ellipsis(command, 20) if trunc else command),
        "CreatedAt": go_time(c.get("Created", 0)),
        "RunningFor": since(c.get("Created", 0)),
        "Ports": ports(c.get("Ports") or []),
        "State": c.get("State", ""),
        "Status": c.get("Status", ""),
        "Size": size or "0B",
        "Names": ",".join(n for n in names if "/" not in n) if trunc else ",".join(names),
        "Labels": ",".join(f"{k}={v}" for k, v in labels.items()),
        "Mounts": ",".join(_ellipsis(m.get("Name") or m.get("Source", ""), 15) if trunc
                           else m.get("Name") or m.get("Source", "")
                           for m in c.get("Mounts") or []),
        "Networks": ",".join(sorted(networks)),
        "LocalVolumes": str(sum(1 for m in c.get("Mounts") or [] if m.get("Driver") == "local")),
    }, labels)


def ps(session: Session, opts: Options, _args: list[str]) -> int:
    params: dict[str, Any] = {"all": opts.all or None, "size": opts.size or None,
                              "filters": filters(opts.filter)}
    if opts.last != -1 or opts.latest:
        params["limit"] = 1 if opts.latest else opts.last
    containers = session.client.get("/containers/json", params)
    if opts.quiet and not opts.format:
        write("".join((c["Id"][:12] if not opts.no_trunc else c["Id"]) + "\n"
                      for c in containers))
        return 0
    rows = [row(c, not opts.no_trunc) for c in containers]
    fmt = opts.format
    if fmt is None and opts.size:
        fmt = DEFAULT + "\t{{.Size}}"
    if fmt is None and not opts.quiet:
        # The default table, without the template engine: `moor ps` is on the hot path.
        keys = ("ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names")
        lines = ["CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES"]
        lines += ["\t".join(r[k] for k in keys) for r in rows]
        write(tabulate(lines))
        return 0
    write(render(rows, fmt, DEFAULT, HEADERS))
    return 0


SPECS = {
    "ps": Spec("[OPTIONS]", ps, (
        flag("a|all", BOOL, "Show all containers (default shows just running)"),
        FILTER,
        flag("format", STR, "Format output using a custom template"),
        flag("n|last", INT, "Show n last created containers (includes all states)", -1),
        flag("l|latest", BOOL, "Show the latest created container (includes all states)"),
        flag("no-trunc", BOOL, "Don't truncate output"),
        flag("q|quiet", BOOL, "Only display container IDs"),
        flag("s|size", BOOL, "Display total file sizes")), max_args=0,
        aliases=("moor container ls", "moor container list", "moor container ps", "moor ps")),
}
