"""IP address management: subnets for new networks, addresses for endpoints.

Subnets come from the address pools (daemon.json `default-address-pools`, else
Docker's defaults), skipping every subnet that overlaps one of ours, a route of the
host, or docker0's 172.17.0.0/16, so moord and a dockerd beside it never fight over a
range. Addresses are claimed in moor.db (one row each), which keeps them unique while
in use and across restarts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator

from moorage.errors import Forbidden, InvalidParameter
from moorage.model.networks import IpamPool

Net = ipaddress.IPv4Network
# libnetwork's default pools: 172.17-31.0.0/16, then 192.168.0.0/16 cut in /20s.
DEFAULT_POOLS: tuple[tuple[str, int], ...] = (
    *((f"172.{i}.0.0/16", 16) for i in range(17, 32)), ("192.168.0.0/16", 20))
DOCKER0 = ipaddress.ip_network("172.17.0.0/16")


def parse_network(text: str, what: str = "subnet") -> Net:
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidParameter(f"Invalid {what} {text} : invalid CIDR address: {text}") \
            from None
    if not isinstance(network, Net):
        raise InvalidParameter(f"{what} {text}: IPv6 networks are not supported yet")
    return network


def parse_address(text: str) -> ipaddress.IPv4Address:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidParameter(f"invalid IP address: {text}") from None
    if not isinstance(address, ipaddress.IPv4Address):
        raise InvalidParameter(f"{text}: IPv6 addresses are not supported yet")
    return address


def free_subnet(pools: Iterable[tuple[str, int]], taken: Iterable[Net]) -> Net:
    """The first subnet of the pools that overlaps nothing taken."""
    taken = [*taken, DOCKER0]
    for base, size in pools:
        network = parse_network(base)
        if size < network.prefixlen:
            continue
        for candidate in network.subnets(new_prefix=size):
            if not any(candidate.overlaps(t) for t in taken):
                return candidate
    raise Forbidden("could not find an available, non-overlapping IPv4 address pool among "
                    "the defaults to assign to the network")


def make_pool(subnet: str, gateway: str = "", ip_range: str = "",
              aux: dict[str, str] | None = None, shows_gateway: bool = True) -> IpamPool:
    """A pool checked as libnetwork checks `network create` options."""
    network = parse_network(subnet)
    if ip_range:
        sub = parse_network(ip_range, "ip-range")
        if not sub.subnet_of(network):
            raise Forbidden(f"invalid pool request: Invalid Address: {ip_range} not "
                            f"contained in {network}")
    if gateway:
        if parse_address(gateway) not in network:
            raise Forbidden(f"failed to allocate gateway ({gateway}): Invalid Address "
                            f"{gateway} not contained in {network}")
    else:
        gateway = str(next(network.hosts()))
    for name, address in (aux or {}).items():
        if parse_address(address) not in network:
            raise Forbidden(f"invalid aux address {name}={address}: not in {network}")
    return IpamPool(subnet=str(network), gateway=gateway, ip_range=ip_range,
                    aux_addresses=dict(aux or {}), shows_gateway=shows_gateway)


def candidates(pool: IpamPool) -> Iterator[str]:
    """Addresses an endpoint may get, lowest first: the range without the gateway and
    the auxiliary addresses."""
    reserved = {pool.gateway, *pool.aux_addresses.values()}
    network = parse_network(pool.ip_range or pool.subnet)
    for host in network.hosts():
        text = str(host)
        if text not in reserved:
            yield text


def mac_for(address: str) -> str:
    """Docker's MAC of an endpoint: 02:42 and the four bytes of its IPv4 address."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(address).packed)
