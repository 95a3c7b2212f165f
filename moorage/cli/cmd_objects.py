"""The network group: thin wrappers over its endpoints."""

from __future__ import annotations

import sys

from moorage.cli.common import FILTER, FORMAT, filters, for_each, template
from moorage.cli.flags import BOOL, LIST, STR, Spec, UsageError, flag
from moorage.cli.output import indented_json, natural_key, render, write
from moorage.client.errors import APIError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from moorage.cli.flags import Options
    from moorage.cli.session import Session


def _inspect(session: Session, opts: Options, paths: list[str]) -> int:
    found = [session.client.get(path) for path in paths]
    write("".join(template(opts.format, f) + "\n" for f in found) if opts.format
          else indented_json(found) + "\n")
    return 0


def network_ls(session: Session, opts: Options, _args: list[str]) -> int:
    from moorage.cli.cmd_ps import Row

    nets = session.client.get("/networks", {"filters": filters(opts.filter)})
    rows = []
    for net in sorted(nets, key=lambda n: natural_key(n["Name"])):
        labels = net.get("Labels") or {}
        rows.append(Row({
            "CreatedAt": _go_time_string(net.get("Created") or ""), "Driver": net["Driver"],
            "ID": net["Id"] if opts.no_trunc else net["Id"][:12],
            "IPv4": str(bool(net.get("EnableIPv4"))).lower(),
            "IPv6": str(bool(net.get("EnableIPv6"))).lower(),
            "Internal": str(bool(net.get("Internal"))).lower(),
            "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
            "Name": net["Name"], "Scope": net["Scope"]}, labels))
    write(render(rows, opts.format or ("{{.ID}}" if opts.quiet else None), _NETWORKS,
                 _NETWORK_HEADERS))
    return 0


_NETWORKS = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
_NETWORK_HEADERS = {"ID": "NETWORK ID", "IPv4": "IPV4", "IPv6": "IPV6",
                    "CreatedAt": "CREATED AT"}


def _go_time_string(rfc3339: str) -> str:
    """Go's time.String() of a time the API gave as RFC 3339 (the docker CLI keeps its
    zone): "2024-05-01 10:00:00.5 +0000 UTC"."""
    if not rfc3339:
        return ""
    moment, zone = rfc3339.replace("T", " "), "+0000 UTC"
    if moment.endswith("Z"):
        moment = moment[:-1]
    elif moment[-6] in "+-":
        offset = moment[-6:].replace(":", "")
        moment, zone = moment[:-6], f"{offset} {offset}"
    whole, _, fraction = moment.partition(".")
    fraction = fraction.rstrip("0")
    return f"{whole}{'.' + fraction if fraction else ''} {zone}"


def network_create(session: Session, opts: Options, args: list[str]) -> int:
    body = {"Name": args[0], "CheckDuplicate": True, "Driver": opts.driver,
            "Internal": opts.internal, "Attachable": opts.attachable,
            "EnableIPv6": opts.ipv6, "Options": _pairs(opts.opt), "Labels": _pairs(opts.label)}
    pool = {key: value for key, value in (
        ("Subnet", opts.subnet), ("IPRange", opts.ip_range), ("Gateway", opts.gateway),
        ("AuxiliaryAddresses", _pairs(opts.aux_address))) if value}
    if (opts.ip_range or opts.gateway or opts.aux_address) and not opts.subnet:
        raise UsageError("every ip-range or gateway must have a corresponding subnet")
    body["IPAM"] = {"Driver": opts.ipam_driver, "Config": [pool] if pool else [],
                    "Options": _pairs(opts.ipam_opt)}
    if opts.scope:
        body["Scope"] = opts.scope
    write(session.client.post("/networks/create", body=body)["Id"] + "\n")
    return 0


def _pairs(items: list[str]) -> dict[str, str]:
    return dict(item.partition("=")[::2] for item in items)


def network_rm(session: Session, opts: Options, args: list[str]) -> int:
    def remove(name: str) -> str | None:
        try:
            session.client.delete(f"/networks/{name}")
        except APIError as err:
            # -f: a network that does not exist is no error, and not listed (docker 28)
            if not (opts.force and err.status == 404):
                raise
            return None
        return name
    failed = for_each(args, remove)
    if failed:
        # docker 28 ends a failed network rm with its StatusError's text
        sys.stderr.write("exit status 1\n")
    return failed


def network_inspect(session: Session, opts: Options, args: list[str]) -> int:
    return _inspect(session, opts, [f"/networks/{n}" for n in args])


def network_prune(session: Session, opts: Options, _args: list[str]) -> int:
    report = session.client.post("/networks/prune", {"filters": filters(opts.filter)}) or {}
    deleted = report.get("NetworksDeleted") or []
    if deleted:
        write("Deleted Networks:\n" + "".join(n + "\n" for n in deleted) + "\n")
    return 0


def network_connect(session: Session, opts: Options, args: list[str]) -> int:
    endpoint: dict = {"Aliases": opts.alias or None, "Links": opts.link or None,
                      "DriverOpts": _pairs(opts.driver_opt) or None}
    ipam = {key: value for key, value in (("IPv4Address", opts.ip), ("IPv6Address", opts.ip6),
                                          ("LinkLocalIPs", opts.link_local_ip or None))
            if value}
    if ipam:
        endpoint["IPAMConfig"] = ipam
    session.client.post(f"/networks/{args[0]}/connect",
                        body={"Container": args[1], "EndpointConfig": endpoint})
    return 0


def network_disconnect(session: Session, opts: Options, args: list[str]) -> int:
    session.client.post(f"/networks/{args[0]}/disconnect",
                        body={"Container": args[1], "Force": opts.force})
    return 0


_LABEL = flag("label", LIST, "Set metadata")
SPECS = {
    "network_ls": Spec("[OPTIONS]", network_ls, (
        FILTER, flag("format", STR, "Pretty-print networks using a Go template"),
        flag("no-trunc", BOOL, "Do not truncate the output"),
        flag("q|quiet", BOOL, "Only display network IDs")), max_args=0),
    "network_create": Spec("[OPTIONS] NETWORK", network_create, (
        flag("d|driver", STR, "Driver to manage the Network", "bridge"),
        flag("internal", BOOL, "Restrict external access to the network"), _LABEL,
        flag("attachable", BOOL, "Enable manual container attachment"),
        flag("ipv6", BOOL, "Enable IPv6 networking"),
        flag("o|opt", LIST, "Set driver specific options"),
        flag("subnet", STR, "Subnet in CIDR format that represents a network segment"),
        flag("gateway", STR, "IPv4 or IPv6 Gateway for the master subnet"),
        flag("ip-range", STR, "Allocate container ip from a sub-range"),
        flag("aux-address", LIST, "Auxiliary IPv4 or IPv6 addresses used by Network driver"),
        flag("ipam-driver", STR, "IP Address Management Driver", "default"),
        flag("ipam-opt", LIST, "Set IPAM driver specific options"),
        flag("scope", STR, "Control the network's scope")),
        min_args=1, max_args=1),
    "network_rm": Spec("NETWORK [NETWORK...]", network_rm, (
        flag("f|force", BOOL, "Do not error if the network does not exist"),), min_args=1),
    "network_inspect": Spec("[OPTIONS] NETWORK [NETWORK...]", network_inspect, (FORMAT,),
                            min_args=1),
    "network_prune": Spec("[OPTIONS]", network_prune, (
        FILTER, flag("f|force", BOOL, "Do not prompt for confirmation")), max_args=0),
    "network_connect": Spec("[OPTIONS] NETWORK CONTAINER", network_connect, (
        flag("alias", LIST, "Add network-scoped alias for the container"),
        flag("driver-opt", LIST, "driver options for the network"),
        flag("ip", STR, "IPv4 address (e.g., \"172.30.100.104\")"),
        flag("ip6", STR, "IPv6 address (e.g., \"2001:db8::33\")"),
        flag("link-local-ip", LIST, "Add a link-local address for the container"),
        flag("link", LIST, "Add link to another container")), min_args=2, max_args=2),
    "network_disconnect": Spec("[OPTIONS] NETWORK CONTAINER", network_disconnect, (
        flag("f|force", BOOL, "Force the container to disconnect from a network"),),
        min_args=2, max_args=2),
}
