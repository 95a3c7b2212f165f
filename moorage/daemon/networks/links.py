"""The bridge driver's links: a Linux bridge per network, a veth pair per endpoint.

Blocking netlink calls (pyroute2), for worker threads.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from moorage.daemon.networks import netns, rtnl


def ensure_bridge(ipr: IPRoute, name: str, gateway: str, prefix_len: int) -> int:
    """The bridge up with the gateway's address; what exists is kept. Its index."""
    try:
        ipr.link("add", ifname=name, kind="bridge")
    except NetlinkError as err:
        if err.code != rtnl.EEXIST:
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
        if err.code != rtnl.EEXIST:
            raise
    ipr.link("set", index=index, state="up")
    return index


def delete_link(ipr: IPRoute, name: str) -> None:
    """Gone already is fine. Found by a `get` of its name, not a dump of every link."""
    try:
        ipr.link("del", index=_index(ipr, name))
    except NetlinkError as err:
        if err.code != rtnl.ENODEV:
            raise


@dataclass(frozen=True, slots=True)
class Veth:
    """An endpoint's veth: `host_side` on the bridge of index `master`, `ifname` in the
    container with its address, MAC and (with `default_route`) the route out."""

    master: int
    host_side: str
    ifname: str
    address: str
    prefix_len: int
    gateway: str
    mac: str
    default_route: bool


# Every network namespace's loopback device has this index (LOOPBACK_IFINDEX in
# the kernel's net/core/dev.c): no lookup.
_LOOPBACK_INDEX = 1


def plug(namespace: str, veths: Sequence[Veth], loopback: bool) -> None:
    """The veths from their bridges into the namespace at `namespace`, with (with
    `loopback`) its `lo` up. In three batched netlink round trips for a container's
    first network, not one per step: each pair made in place in one request, then in
    the namespace the links up and their indexes asked, then the addresses and the
    route. Nothing is left behind when a step fails: a pair goes with its host
    side."""
    fd = os.open(namespace, os.O_RDONLY | os.O_CLOEXEC)
    made: list[str] = []
    try:
        with closing(rtnl.open_socket()) as host:
            try:
                for veth in veths:
                    _make(host, veth, fd)
                    made.append(veth.host_side)
                with closing(netns.rtnl_socket(namespace)) as inner:
                    asked = [rtnl.link_up(_LOOPBACK_INDEX)] if loopback else []
                    asked += [rtnl.link_up(name=v.ifname) for v in veths]
                    answers = rtnl.request(inner, [*asked, *(rtnl.get_link(v.ifname)
                                                             for v in veths)])
                    indexes = [rtnl.index(a) for a in answers[len(asked):]]
                    rtnl.request(inner, [
                        *(rtnl.add_address(i, v.address, v.prefix_len)
                          for i, v in zip(indexes, veths, strict=True)),
                        *(rtnl.add_default_route(v.gateway) for v in veths if v.default_route)])
            except BaseException:
                for name in made:
                    _forget(host, name)
                raise
    finally:
        os.close(fd)


def link_index(name: str) -> int:
    """The index of a link of the daemon's namespace (NetlinkError ENODEV without it)."""
    with closing(rtnl.open_socket()) as host:
        return rtnl.index(rtnl.request(host, [rtnl.get_link(name)])[0])


def _make(host: socket.socket, veth: Veth, namespace_fd: int) -> None:
    def create() -> list[rtnl.ifinfmsg]:
        return [rtnl.new_veth(veth.host_side, veth.master, veth.ifname, namespace_fd,
                              veth.mac)]

    try:
        rtnl.request(host, create())
    except NetlinkError as err:
        if err.code != rtnl.EEXIST:
            raise
        # The previous start's pair: it goes with that run's namespace, which the
        # kernel frees a little after the init's exit.
        _forget(host, veth.host_side)
        rtnl.request(host, create())


def _forget(host: socket.socket, name: str) -> None:
    try:
        rtnl.request(host, [rtnl.delete_link(name)])
    except NetlinkError as err:
        if err.code != rtnl.ENODEV:
            raise


def _index(ipr: IPRoute, name: str) -> int:
    return int(ipr.link("get", ifname=name)[0]["index"])


def unplug(namespace: str, ifname: str) -> None:
    """The endpoint's interface out of a running container (its pair goes with it)."""
    with netns.routes(namespace) as inner:
        delete_link(inner, ifname)
