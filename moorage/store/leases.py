"""Leases: the GC roots of the metadata layer (containerd's leases).

A holder (a container) leases the resources it uses (its image, its volumes);
removal and prune leave a leased resource alone, or refuse, as Docker does. A
lease is a row in moor.db, so it outlives a daemon restart. Acquire and release
are idempotent.
"""

from __future__ import annotations

from moorage.store.metadata import Metadata


class Leases:
    """The leases on one kind of resource ("image", "volume")."""

    def __init__(self, metadata: Metadata, kind: str) -> None:
        self.metadata = metadata
        self.kind = kind

    def acquire(self, holder: str, resource: str) -> None:
        self.metadata.add_lease(holder, self.kind, resource)

    def release(self, holder: str, resource: str | None = None) -> None:
        """Drop ``holder``'s lease on ``resource``, or all its leases of this kind."""
        self.metadata.delete_leases(holder, self.kind, resource)

    def holders(self, resource: str) -> list[str]:
        """Who holds ``resource``, sorted; empty when it is free."""
        return self.metadata.lease_holders(self.kind, resource)

    def held(self) -> set[str]:
        """Every resource of this kind somebody holds."""
        return self.metadata.leased(self.kind)
