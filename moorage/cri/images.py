"""The CRI's ImageService over the engine's image store, in the CRI's own namespace of
it (k8s.io, as containerd's): the same content and snapshots as the Docker API, but its
own references (named in full, docker.io/library/x:tag) and list of images."""

from __future__ import annotations

import asyncio
import base64
import logging
import os

from moorage.cri import convert
from moorage.cri.backends import Images
from moorage.cri.proto import api_pb2 as pb
from moorage.errors import InvalidParameter, NotFound
from moorage.model.distribution import AuthConfig, PullRequest
from moorage.model.times import now_ns

log = logging.getLogger("moord.cri")


class CriImages:
    def __init__(self, images: Images, snapshots_dir: str) -> None:
        self.images = images
        self.snapshots_dir = snapshots_dir

    def _image(self, summary_id: str, size: int) -> pb.Image:
        resolved = self.images.resolve(summary_id)
        user = ((resolved.config.get("config") or {}).get("User") or "").partition(":")[0]
        image = pb.Image(
            id=summary_id, size=size,
            repo_tags=[convert.image_ref(t) for t in self.images.repo_tags(summary_id)],
            repo_digests=[convert.image_ref(d) for d in self.images.repo_digests(summary_id)])
        if user.isdigit():
            image.uid.value = int(user)
        elif user:
            image.username = user
        return image

    async def list(self, selector: pb.ImageFilter | None) -> list[pb.Image]:
        def listing() -> list[pb.Image]:
            wanted = ""
            if selector is not None and selector.image.image:
                wanted = self.images.resolve(selector.image.image).id
            return [self._image(s.id, s.size) for s in self.images.images({}, False)
                    if not wanted or s.id == wanted]
        try:
            return await asyncio.to_thread(listing)
        except NotFound:
            return []

    async def status(self, spec: pb.ImageSpec) -> pb.Image | None:
        if not spec.image:
            raise InvalidParameter("image spec must not be empty")

        def find() -> pb.Image | None:
            try:
                found = self.images.resolve(spec.image)
            except NotFound:
                return None  # the CRI answers an unknown image with an empty status
            for summary in self.images.images({}, False):
                if summary.id == found.id:
                    return self._image(summary.id, summary.size)
            return None
        return await asyncio.to_thread(find)

    async def pull(self, spec: pb.ImageSpec, auth: pb.AuthConfig) -> str:
        if not spec.image:
            raise InvalidParameter("image spec must not be empty")
        if auth.auth and not auth.username:
            user, _, password = base64.b64decode(auth.auth).decode().partition(":")
        else:
            user, password = auth.username, auth.password
        await self.images.pull_image(PullRequest(
            from_image=spec.image, tag="", platform="", auth=AuthConfig(
                username=user, password=password, server_address=auth.server_address,
                identity_token=auth.identity_token, registry_token=auth.registry_token)),
            lambda _message: None)
        return (await asyncio.to_thread(self.images.resolve, spec.image)).id

    async def ensure(self, name: str) -> str:
        """The ID of the image ``name``, pulled first when the namespace lacks it (the
        pause image of a pod, as containerd's RunPodSandbox does)."""
        try:
            return (await asyncio.to_thread(self.images.resolve, name)).id
        except NotFound:
            log.info("CRI: pulling %s, which the CRI's images lack", name)
            return await self.pull(pb.ImageSpec(image=name), pb.AuthConfig())

    async def remove(self, spec: pb.ImageSpec) -> None:
        if not spec.image:
            raise InvalidParameter("image spec must not be empty")
        # containerd's RemoveImage: the image goes with every reference it has here.
        try:
            image_id = (await asyncio.to_thread(self.images.resolve, spec.image)).id
            await asyncio.to_thread(self.images.image_delete, image_id, True, True)
        except NotFound:
            pass  # kubelet retries removals: an unknown image is already removed

    def fs_info(self) -> pb.FilesystemUsage:
        used = inodes = 0
        for top, dirs, files in os.walk(self.snapshots_dir):
            for entry in files:
                try:
                    used += os.lstat(os.path.join(top, entry)).st_blocks * 512
                except OSError:
                    continue
            inodes += len(dirs) + len(files)
        return pb.FilesystemUsage(timestamp=now_ns(),
                                  fs_id=pb.FilesystemIdentifier(mountpoint=self.snapshots_dir),
                                  used_bytes=pb.UInt64Value(value=used),
                                  inodes_used=pb.UInt64Value(value=inodes))
