"""What a client asks of networks: a network's creation, and a container's place on one
(a network connect, a create's NetworkingConfig), as wire models that moorage.api.wire
decodes, naming a wrong type as Go does."""

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


@dataclass(frozen=True, slots=True)
class IPAMConfig:
    GO_PACKAGE: ClassVar[str] = "network"

    subnet: str = w("Subnet", "")
    ip_range: str = w("IPRange", "")
    gateway: str = w("Gateway", "")
    auxiliary_addresses: dict[str, str] | None = w("AuxiliaryAddresses")


@dataclass(frozen=True, slots=True)
class IPAM:
    GO_PACKAGE: ClassVar[str] = "network"

    driver: str = w("Driver", "")
    config: tuple[IPAMConfig, ...] | None = w("Config")
    options: dict[str, str] | None = w("Options")


@dataclass(frozen=True, slots=True)
class ConfigReference:
    GO_PACKAGE: ClassVar[str] = "network"

    network: str = w("Network", "")


@dataclass(frozen=True, slots=True)
class NetworkCreateRequest:
    """POST /networks/create."""

    GO_PACKAGE: ClassVar[str] = "types"

    name: str = w("Name", "")
    check_duplicate: bool = w("CheckDuplicate", False)
    driver: str = w("Driver", "")
    scope: str = w("Scope", "")
    enable_ipv6: bool = w("EnableIPv6", False)
    ipam: IPAM | None = w("IPAM")
    internal: bool = w("Internal", False)
    attachable: bool = w("Attachable", False)
    ingress: bool = w("Ingress", False)
    config_only: bool = w("ConfigOnly", False)
    config_from: ConfigReference | None = w("ConfigFrom")
    options: dict[str, str] | None = w("Options")
    labels: dict[str, str] | None = w("Labels")
