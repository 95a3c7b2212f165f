"""container prune: every stopped container the filters (until, label, label!) select,
removed; the writable layers' bytes given back."""

from __future__ import annotations

import asyncio
import logging

from moorage.daemon.containers import remove, setup
from moorage.daemon.containers.context import Context
from moorage.daemon.filterargs import has_labels, lacks_labels, validate
from moorage.daemon.images.filters import timestamp
from moorage.errors import MoorError, NotFound
from moorage.model.records import ContainerRecord

log = logging.getLogger("moord.containers")
_ACCEPTED = ("label", "label!", "until")


def _selected(record: ContainerRecord, filters: dict[str, list[str]], until: float | None
              ) -> bool:
    if record.state.running:
        return False
    if until is not None and record.created >= until * 1_000_000_000:
        return False
    labels = record.config.labels or {}
    return has_labels(labels, filters.get("label", ())) and \
        lacks_labels(labels, filters.get("label!", ()))


async def containers_prune(ctx: Context, filters: dict[str, list[str]]) -> tuple[list[str], int]:
    """(the removed containers' ids, the bytes reclaimed)."""
    validate(filters, _ACCEPTED)
    until = min((timestamp(v) for v in filters.get("until", ())), default=None)
    deleted, reclaimed = [], 0
    for record in ctx.registry.all():
        if not _selected(record, filters, until):
            continue
        try:
            upper = ctx.images.rootfs_mounts(record.id)[0].option("upperdir") or ""
        except NotFound:
            upper = ""
        size = await asyncio.to_thread(setup.tree_size, upper) if upper else 0
        try:
            await remove.container_rm(ctx, record.id, False, False)
        except MoorError as err:  # started or removed meanwhile: dockerd skips it too
            log.info("prune: container %s kept: %s", record.id, err)
            continue
        deleted.append(record.id)
        reclaimed += size
    ctx.events.publish("container", "prune", "", {"reclaimed": str(reclaimed)})
    return deleted, reclaimed
