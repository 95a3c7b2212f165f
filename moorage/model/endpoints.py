"""What a client asks of a container's place on a network: a network connect's body and
a create's NetworkingConfig (Docker's network.EndpointSettings), as wire models that
moorage.api.wire decodes, naming a wrong type as Go does."""

# w() returns dataclasses.field(...) with the JSON key; ruff cannot see through it.
# ruff: noqa: RUF009

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from moorage.model.fields import w


@dataclass(frozen=True, slots=True)
class EndpointIPAMConfig:
    GO_PACKAGE: ClassVar[str] = "network"

    ipv4_address: str = w("IPv4Address", "")
    ipv6_address: str = w("IPv6Address", "")
    link_local_ips: tuple[str, ...] | None = w("LinkLocalIPs")


@dataclass(frozen=True, slots=True)
class EndpointSettings:
    """One network's endpoint. The fields the engine decides (IDs, the addresses it
    gives) are read and not used, as dockerd reads them."""

    GO_PACKAGE: ClassVar[str] = "network"

    ipam_config: EndpointIPAMConfig | None = w("IPAMConfig")
    links: tuple[str, ...] | None = w("Links")
    aliases: tuple[str, ...] | None = w("Aliases")
    network_id: str = w("NetworkID", "")
    endpoint_id: str = w("EndpointID", "")
    gateway: str = w("Gateway", "")
    ip_address: str = w("IPAddress", "")
    ip_prefix_len: int = w("IPPrefixLen", 0)
    ipv6_gateway: str = w("IPv6Gateway", "")
    global_ipv6_address: str = w("GlobalIPv6Address", "")
    global_ipv6_prefix_len: int = w("GlobalIPv6PrefixLen", 0)
    mac_address: str = w("MacAddress", "")
    driver_opts: dict[str, str] | None = w("DriverOpts")


@dataclass(frozen=True, slots=True)
class NetworkingConfig:
    GO_PACKAGE: ClassVar[str] = "network"

    endpoints_config: dict[str, EndpointSettings | None] | None = w("EndpointsConfig")


@dataclass(frozen=True, slots=True)
class NetworkConnect:
    """POST /networks/{id}/connect."""

    GO_PACKAGE: ClassVar[str] = "types"

    container: str = w("Container", "")
    endpoint_config: EndpointSettings | None = w("EndpointConfig")
