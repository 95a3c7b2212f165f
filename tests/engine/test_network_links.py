"""The bridge driver's veths made by batched netlink requests (daemon/networks/links.py,
rtnl.py), on a real bridge and real network namespaces, without a daemon: what a
container's namespace holds after a plug, a plug that finds the previous start's pair
still there, and one that fails halfway. The bridge's name is unique to the test and
the namespaces are held by fds only (nothing in /run/netns)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
from pyroute2.netlink.exceptions import NetlinkError

from moorage.daemon.networks import links, netns

GATEWAY, SUBNET_BITS = "10.251.7.1", 24


@pytest.fixture
def bridge() -> Iterator[tuple[str, int]]:
    name = "mlt" + secrets.token_hex(5)
    with netns.routes() as ipr:
        index = links.ensure_bridge(ipr, name, GATEWAY, SUBNET_BITS)
        try:
            yield name, index
        finally:
            links.delete_link(ipr, name)


@pytest.fixture
def namespaces() -> Iterator[list[int]]:
    """Fds of new network namespaces the test makes with netns.new_namespace."""
    held: list[int] = []
    try:
        yield held
    finally:
        for fd in held:
            os.close(fd)


def _new(held: list[int]) -> str:
    held.append(netns.new_namespace())
    return netns.held_path(held[-1])


def _veth(index: int, host_side: str, address: str, gateway: str = GATEWAY) -> links.Veth:
    return links.Veth(index, host_side, "eth0", address, SUBNET_BITS, gateway,
                      "02:42:0a:fb:07:02", default_route=True)


def _inside(path: str) -> tuple[dict[str, bool], list[str], list[str]]:
    """The namespace's links (name → up), addresses and default gateways."""
    with netns.routes(path) as ipr:
        found = {link.get_attr("IFLA_IFNAME"): bool(link["flags"] & 1)
                 for link in ipr.get_links()}
        addresses = sorted(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                           for a in ipr.get_addr(family=2))
        gateways = [r.get_attr("RTA_GATEWAY") for r in ipr.get_routes(family=2)
                    if r["dst_len"] == 0 and r.get_attr("RTA_GATEWAY")]
    return found, addresses, gateways


def _host_side(name: str) -> tuple[int, bool] | None:
    """(its master's index, up) of a host link, None when there is none."""
    with netns.routes() as ipr:
        try:
            link = ipr.link("get", ifname=name)[0]
        except NetlinkError:
            return None
    return link.get_attr("IFLA_MASTER"), bool(link["flags"] & 1)


def test_a_plug_and_one_that_finds_the_last_pair(bridge, namespaces) -> None:
    _, index = bridge
    host_side = "veth" + secrets.token_hex(5)
    try:
        first = _new(namespaces)
        links.plug(first, [_veth(index, host_side, "10.251.7.2")], loopback=True)
        assert _inside(first) == ({"lo": True, "eth0": True},
                                  ["10.251.7.2/24", "127.0.0.1/8"], [GATEWAY])
        assert _host_side(host_side) == (index, True)
        # A restart's plug while the last run's namespace (and so its pair) still exists.
        second = _new(namespaces)
        links.plug(second, [_veth(index, host_side, "10.251.7.3")], loopback=True)
        assert _inside(second)[1:] == (["10.251.7.3/24", "127.0.0.1/8"], [GATEWAY])
        assert "eth0" not in _inside(first)[0]
    finally:
        with netns.routes() as ipr:
            links.delete_link(ipr, host_side)


def test_a_plug_that_fails_leaves_no_pair(bridge, namespaces) -> None:
    _, index = bridge
    host_side = "veth" + secrets.token_hex(5)
    path = _new(namespaces)
    # A gateway outside the subnet: the route's request fails after the pair exists.
    with pytest.raises(NetlinkError):
        links.plug(path, [_veth(index, host_side, "10.251.7.2", gateway="10.9.9.9")],
                   loopback=True)
    assert _host_side(host_side) is None
    assert "eth0" not in _inside(path)[0]


def test_link_index_of_a_bridge_and_of_none(bridge) -> None:
    name, index = bridge
    assert links.link_index(name) == index
    with pytest.raises(NetlinkError) as raised:
        links.link_index("mlt-none-" + secrets.token_hex(2))
    assert raised.value.code == 19   # ENODEV
