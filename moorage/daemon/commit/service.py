"""``docker commit`` and ``docker diff`` (moby daemon/commit.go, daemon/changes.go).

The writable layer of a container is its overlay upper directory: ``changes``
walks it against the image's layers, ``commit`` turns it into a layer on top of
the container's image, with the config the request and ``--change`` give,
completed from the container's own config (moby's merge)."""

from __future__ import annotations

import asyncio
from typing import Any

from moorage.daemon.containers import stop
from moorage.daemon.containers.context import Context
from moorage.daemon.images.commit import ChildImage, commit_child
from moorage.daemon.images.transfer import tag_target
from moorage.errors import Conflict
from moorage.image.changes import apply_changes
from moorage.image.diff import Change, changes
from moorage.model.fields import to_wire
from moorage.model.records import REMOVING


class CommitService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _upper_and_lowers(self, container_id: str) -> tuple[str, list[str]]:
        mount = self.ctx.images.rootfs_mounts(container_id)[0]
        lowers = (mount.option("lowerdir") or "").split(":")
        return mount.option("upperdir") or "", [d for d in lowers if d]

    async def container_changes(self, ref: str) -> list[Change]:
        record = self.ctx.registry.get(ref)
        upper, lowers = await asyncio.to_thread(self._upper_and_lowers, record.id)
        return await asyncio.to_thread(changes, upper, lowers)

    async def container_commit(self, ref: str, *, repo: str, tag: str, comment: str,
                               author: str, pause: bool, changes: list[str],
                               config: dict[str, Any] | None) -> str:
        ctx = self.ctx
        record = ctx.registry.get(ref)
        if record.state.status == REMOVING:
            raise Conflict(f"You cannot commit container {record.id} which is being "
                           "removed")
        if record.state.dead:
            raise Conflict(f"You cannot commit container {record.id} which is dead "
                           "because of previous errors")
        target = tag_target(repo, tag) if repo else None
        container_config = to_wire(record.config)
        wanted = apply_changes(config if config is not None else container_config, changes)
        merged = merge(wanted, container_config)
        paused = pause and record.state.running and not record.state.paused
        if paused:
            await stop.container_pause(ctx, record.id, True)
        try:
            upper, _ = await asyncio.to_thread(self._upper_and_lowers, record.id)
            image_id = await asyncio.to_thread(commit_child, ctx.images, record.image,
                                               ChildImage(
                config=merged, created_by=" ".join(container_config.get("Cmd") or ()),
                upper=upper, author=author, comment=comment, container=record.id,
                container_config=container_config))
        finally:
            if paused:
                await stop.container_pause(ctx, record.id, False)
        if target is not None:
            await asyncio.to_thread(ctx.images.add_tag, target, image_id)
        attributes = {"comment": comment, "imageID": image_id, "pause": str(pause).lower(),
                      "author": author, "image": ctx.images.repo_tags(record.image)[0]
                      if ctx.images.repo_tags(record.image) else record.image,
                      "name": record.name.lstrip("/")}
        if target is not None:
            attributes["imageRef"] = target.familiar_string()
        ctx.events.publish("container", "commit", record.id, attributes)
        return image_id


def merge(user: dict[str, Any], image: dict[str, Any]) -> dict[str, Any]:
    """moby's daemon/commit.go merge: what ``user`` leaves empty comes from ``image``."""
    out = dict(user)
    out["User"] = user.get("User") or image.get("User") or ""
    out["ExposedPorts"] = {**(image.get("ExposedPorts") or {}),
                           **(user.get("ExposedPorts") or {})} or None
    user_env = list(user.get("Env") or ())
    keys = {e.partition("=")[0] for e in user_env}
    # None, as dockerd's, where neither has a variable (a container's own config may
    # hold an empty list).
    out["Env"] = (user_env + [e for e in image.get("Env") or ()
                              if e.partition("=")[0] not in keys]) or None
    out["Labels"] = {**(image.get("Labels") or {}), **(user.get("Labels") or {})}
    if not user.get("Entrypoint"):
        if not user.get("Cmd"):
            out["Cmd"] = image.get("Cmd")
            if image.get("Shell"):
                out["Shell"] = image["Shell"]
        if user.get("Entrypoint") is None:
            out["Entrypoint"] = image.get("Entrypoint")
    if user.get("Healthcheck") is None and image.get("Healthcheck") is not None:
        out["Healthcheck"] = image["Healthcheck"]
    out["WorkingDir"] = user.get("WorkingDir") or image.get("WorkingDir") or ""
    out["Volumes"] = {**(image.get("Volumes") or {}), **(user.get("Volumes") or {})} or None
    out["StopSignal"] = user.get("StopSignal") or image.get("StopSignal")
    if not out["StopSignal"]:
        del out["StopSignal"]
    if not out["ExposedPorts"]:
        del out["ExposedPorts"]
    return out



