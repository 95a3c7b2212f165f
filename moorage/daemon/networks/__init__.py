"""Networks: IPAM, the bridge driver, endpoints, the daemon's nftables table.

Nothing is imported here: `dnsd`, a process of its own, imports `dns` alone.
"""
