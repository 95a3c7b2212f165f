"""POST /build and /build/prune: a build context in, a stream of Docker's JSON messages
out (``stream`` lines, ``aux`` with the image ID, ``errorDetail`` on failure)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from typing import Any, BinaryIO

from moorage.daemon.build.cache import BuildCache
from moorage.daemon.build.context import BuildContext
from moorage.daemon.build.executor import Builder, Emit
from moorage.daemon.build.kept import KeptContexts, Manifest
from moorage.daemon.build.run import StepFailed
from moorage.daemon.containers.service import ContainerService
from moorage.daemon.events.bus import EventBus
from moorage.daemon.images.service import ImageService
from moorage.errors import InvalidParameter, MoorError
from moorage.image.reference import Reference, parse_normalized
from moorage.model.build import BuildCachePruneReport, BuildRequest
from moorage.protocol.stringid import short_id

log = logging.getLogger("moord.build")


class BuildService:
    def __init__(self, data_root: str, images: ImageService, containers: ContainerService,
                 events: EventBus) -> None:
        self.root = os.path.join(data_root, "builder")
        self.work_root = os.path.join(self.root, "tmp")
        # What a crashed build left: contexts and mount points, nothing mounted any more.
        shutil.rmtree(self.work_root, ignore_errors=True)
        os.makedirs(self.work_root, mode=0o700, exist_ok=True)
        self.images = images
        self.containers = containers
        self.events = events
        self.cache = BuildCache(self.root)
        self.kept = KeptContexts(os.path.join(self.root, "contexts"))

    def check_tags(self, tags: tuple[str, ...]) -> list[Reference]:
        refs = []
        for tag in tags:
            ref = parse_normalized(tag)
            if ref.digest is not None:
                raise InvalidParameter(f"invalid reference format: {tag} is a digest")
            refs.append(ref.with_default_tag())
        return refs

    async def build(self, request: BuildRequest, body: BinaryIO, emit: Emit) -> None:
        """Run the build; the caller has sent nothing yet when this raises, so errors
        before the first message become HTTP errors."""
        refs = self.check_tags(request.tags)
        context = await asyncio.to_thread(BuildContext.unpack, body, self.work_root)
        try:
            await self._run(request, refs, context, emit)
        finally:
            await asyncio.to_thread(context.remove)

    async def needed(self, manifest: Any) -> list[str]:
        """The entries of a client's context that its kept copy lacks (kept.py)."""
        parsed = Manifest.parse(manifest)
        return await asyncio.to_thread(self.kept.needed, parsed)

    async def build_kept(self, request: BuildRequest, manifest: Any,
                         body: BinaryIO, emit: Emit) -> None:
        """``build`` from the kept copy of the client's context, brought up to date with
        ``body``: a tar of the entries ``needed`` named."""
        refs = self.check_tags(request.tags)
        parsed = Manifest.parse(manifest)
        chunks = iter(lambda: body.read(1 << 20), b"")
        async with self.kept.synced(parsed, chunks) as context:
            await self._run(request, refs, context, emit)

    async def _run(self, request: BuildRequest, refs: list[Reference], context: BuildContext,
                   emit: Emit) -> None:
        builder = Builder(self.images, self.containers, self.cache, self.work_root,
                          request, context, emit)
        await builder.prepare()
        try:
            image_id = await builder.build()
        except StepFailed as err:
            await emit({"errorDetail": {"code": err.code, "message": str(err)},
                        "error": str(err)})
            return
        except MoorError as err:
            await emit({"errorDetail": {"message": str(err)}, "error": str(err)})
            return
        except OSError as err:
            # The stream has begun: the failure can only be told in it.
            log.exception("build failed")
            message = f"build failed: {err.strerror or err}"
            await emit({"errorDetail": {"message": message}, "error": message})
            return
        await emit({"aux": {"ID": image_id}})
        if request.quiet:
            await emit({"stream": image_id + "\n"})
        else:
            await emit({"stream": f"Successfully built {short_id(image_id)}\n"})
        for ref in refs:
            await asyncio.to_thread(self.images.add_tag, ref, image_id)
            self.events.publish("image", "tag", image_id,
                                {"name": ref.familiar_string()})
            if not request.quiet:
                await emit({"stream": f"Successfully tagged {ref.familiar_string()}\n"})

    async def prune(self, filters: dict[str, Any]) -> BuildCachePruneReport:
        if filters:
            raise InvalidParameter(f"invalid filter '{next(iter(filters))}'")
        gone = await asyncio.to_thread(self.cache.prune)
        contexts, size = await self.kept.prune()
        return BuildCachePruneReport(tuple(gone + contexts), size)
