"""The bridge driver's links: a Linux bridge per network, a veth pair per endpoint.

Blocking netlink calls (pyroute2), for worker threads.
"""

from __future__ import annotations

import os

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from moorage.daemon.networks import netns

_EEXIST = 17
_ENODEV = 19


def ensure_bridge(ipr: IPRoute, name: str, gateway: str, prefix_len: int) -> None:
    """The bridge up with the gateway's address; what exists is kept."""
    try:
        ipr.link("add", ifname=name, kind="bridge")
    except NetlinkError as err:
        if err.code != _EEXIST:
            raise
    index = ipr.link_lookup(ifname=name)[0]
    # Published ports on 127.0.0.1 are DNATed in the kernel to containers behind this
    # bridge: allowed for this interface only (the firewall drops whatever enters it
    # towards 127.0.0.0/8).
    with open(f"/proc/sys/net/ipv4/conf/{name}/route_localnet", "w") as f:
        f.write("1")
    try:
        ipr.addr("add", index=index, address=gateway, prefixlen=prefix_len)
    except NetlinkError as err:
        if err.code != _EEXIST:
            raise
    ipr.link("set", index=index, state="up")


def delete_link(ipr: IPRoute, name: str) -> None:
    """Gone already is fine. Found by a `get` of its name, not a dump of every link."""
    try:
        ipr.link("del", index=_index(ipr, name))
    except NetlinkError as err:
        if err.code != _ENODEV:
            raise


def plug(ipr: IPRoute, inner: IPRoute, namespace: str, bridge: str, host_side: str,
         ifname: str, address: str, prefix_len: int, gateway: str, mac: str,
         default_route: bool) -> None:
    """A veth from the bridge into the namespace at `namespace` (`inner` is a netlink
    socket there), named `ifname` there, with its address, MAC and (with
    `default_route`) the route out through `gateway`. The host side is made on the
    bridge and up in the same request, and links are found by a `get` of their name,
    not a lookup that dumps every link: each netlink round trip is ~0.3-1 ms of the
    start (measured). Nothing is left behind when a step fails: the pair goes with
    its host side."""
    master = _index(ipr, bridge)
    fd = os.open(namespace, os.O_RDONLY | os.O_CLOEXEC)
    try:
        ipr.link("add", ifname=host_side, kind="veth", master=master, state="up",
                 peer={"ifname": ifname, "net_ns_fd": fd, "address": mac})
    finally:
        os.close(fd)
    try:
        inside = _index(inner, ifname)
        inner.addr("add", index=inside, address=address, prefixlen=prefix_len)
        inner.link("set", index=inside, state="up")
        if default_route:
            inner.route("add", dst="0.0.0.0/0", gateway=gateway)
    except BaseException:
        delete_link(ipr, host_side)
        raise


def _index(ipr: IPRoute, name: str) -> int:
    return int(ipr.link("get", ifname=name)[0]["index"])


def unplug(namespace: str, ifname: str) -> None:
    """The endpoint's interface out of a running container (its pair goes with it)."""
    with netns.routes(namespace) as inner:
        delete_link(inner, ifname)
