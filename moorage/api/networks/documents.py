"""Docker's network documents from the daemon's records."""

from __future__ import annotations

from moorage.model.networks import NetworkView
from moorage.model.times import format_rfc3339_nano


def network_document(view: NetworkView) -> dict:
    network = view.network
    config = []
    for pool in network.pools:
        entry = {"Subnet": pool.subnet}
        if pool.ip_range:
            entry["IPRange"] = pool.ip_range
        if pool.shows_gateway:
            entry["Gateway"] = pool.gateway
        if pool.aux_addresses:
            entry["AuxiliaryAddresses"] = dict(pool.aux_addresses)
        config.append(entry)
    builtin = network.name in ("bridge", "host", "none")
    return {
        "Name": network.name, "Id": network.id,
        "Created": format_rfc3339_nano(network.created), "Scope": "local",
        "Driver": network.driver, "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None if builtin else {}, "Config": config},
        "Internal": network.internal, "Attachable": network.attachable, "Ingress": False,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
        "Containers": {e.container_id: {
            "Name": name, "EndpointID": e.id, "MacAddress": e.mac,
            "IPv4Address": f"{e.address}/{e.prefix_len}", "IPv6Address": ""}
            for e, name in view.containers},
        "Options": dict(network.options), "Labels": dict(network.labels),
    }
