"""Networks: IPAM, the bridge driver, endpoints, the daemon's nftables table."""

from moorage.daemon.networks.service import (
    Attachment,
    ContainerInfo,
    NetworkService,
)

__all__ = ["Attachment", "ContainerInfo", "NetworkService"]
