"""Networks and endpoints: the records kept in moor.db (one JSON document each) and
what the API asks of them and shows."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from moorage.errors import InvalidParameter
from moorage.model.network_requests import IPAMConfig

NETWORK_VERSION = 1
ENDPOINT_VERSION = 1
# The networks every engine has, as dockerd's: they cannot be created or removed.
PREDEFINED = ("bridge", "host", "none")


@dataclass(frozen=True, slots=True)
class IpamPool:
    subnet: str
    gateway: str
    ip_range: str = ""
    aux_addresses: dict[str, str] = field(default_factory=dict)
    # As dockerd's inspect: a pool given with a subnet shows its gateway only if given.
    shows_gateway: bool = True


@dataclass(frozen=True, slots=True)
class NetworkRecord:
    id: str
    name: str
    driver: str                     # bridge, host or null
    created: int                    # ns since the epoch
    bridge: str = ""                # the Linux bridge of a bridge network
    internal: bool = False
    attachable: bool = False
    pools: tuple[IpamPool, ...] = ()
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, doc: str) -> NetworkRecord:
        data = json.loads(doc)
        data["pools"] = tuple(IpamPool(**p) for p in data.get("pools") or ())
        return cls(**data)


@dataclass(frozen=True, slots=True)
class EndpointRecord:
    """A container on a network: its address is held in the allocations table for as
    long as this record lives (until a disconnect or the container's removal)."""

    id: str
    network_id: str
    container_id: str
    address: str = ""
    prefix_len: int = 0
    gateway: str = ""
    mac: str = ""
    aliases: tuple[str, ...] = ()
    requested_address: str = ""     # --ip: kept for inspect's IPAMConfig
    ifname: str = ""                # eth0, eth1… inside the container
    links: tuple[str, ...] = ()     # "name:alias" or "name", as given: names only it resolves

    @property
    def key(self) -> str:
        """Unique per network and container: a second connect clashes on it."""
        return f"{self.network_id}/{self.container_id}"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, doc: str) -> EndpointRecord:
        data = json.loads(doc)
        data["aliases"] = tuple(data.get("aliases") or ())
        data["links"] = tuple(data.get("links") or ())
        return cls(**data)


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """POST /networks/create, decoded."""

    name: str
    driver: str = "bridge"
    internal: bool = False
    attachable: bool = False
    enable_ipv6: bool = False
    ipam_driver: str = "default"
    pools: tuple[IPAMConfig, ...] = ()
    options: Mapping[str, str] | None = None
    labels: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class NetworkView:
    """A network with the running containers on it (endpoint and container name)."""

    network: NetworkRecord
    containers: tuple[tuple[EndpointRecord, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ContainerNetwork:
    """A container's endpoint with its network's name, for NetworkSettings."""

    name: str
    endpoint: EndpointRecord


@dataclass(frozen=True, slots=True)
class EndpointRequest:
    """A container create's NetworkingConfig: its network's aliases, links and address."""

    network: str
    aliases: tuple[str, ...] = ()
    ipv4_address: str = ""
    mac_address: str = ""
    links: tuple[str, ...] = ()


def parse_link(link: str) -> tuple[str, str]:
    """A link's container name and alias, as Docker's ParseLink reads "name:alias", "name"
    and the "/name:/container/alias" form an inspected HostConfig carries."""
    if not link:
        raise InvalidParameter("empty string specified for links")
    parts = link.split(":")
    if len(parts) > 2:
        raise InvalidParameter(f"bad format for links: {link}")
    if len(parts) == 1:
        return link, link
    if parts[0].startswith("/"):
        return parts[0][1:], parts[1].rsplit("/", 1)[-1]
    return parts[0], parts[1]


@dataclass(frozen=True, slots=True)
class PublishedPort:
    """A running container's published port."""

    port: int
    proto: str
    host_ip: str             # as inspect shows it: 0.0.0.0, ::, or the address given
    host_port: int
    target: str              # the container's address


def link_list(value: object) -> tuple[str, ...]:
    """Links from a request body (HostConfig.Links, an endpoint's Links), each checked."""
    if not value:
        return ()
    if not isinstance(value, list | tuple) or not all(isinstance(link, str) for link in value):
        raise InvalidParameter("invalid JSON: Links must be a list of strings")
    for link in value:
        parse_link(link)
    return tuple(value)

