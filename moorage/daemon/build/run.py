"""A RUN step in a real container of the engine: created on the step's image with the
stage's config and the build args as environment, started, its output streamed into
the build, committed when it exits 0, removed either way (unless rm=0 keeps it)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from moorage.daemon.build.mounts import drop_file_stubs
from moorage.daemon.containers.service import ContainerService
from moorage.daemon.images.commit import ChildImage, commit_child
from moorage.daemon.images.service import ImageService
from moorage.errors import MoorError
from moorage.model.build import BuildRequest
from moorage.model.config import ContainerConfig, HostConfig, Mount
from moorage.protocol.stringid import short_id


class StepFailed(MoorError):
    """A RUN step's command failed: Docker's message, with the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class RunStep:
    images: ImageService
    containers: ContainerService
    request: BuildRequest
    say: Callable[[str], Awaitable[None]]
    image_id: str
    config: dict[str, Any]  # the stage's config, which the new image gets
    author: str
    cmd: list[str]
    build_env: dict[str, str]  # the build args the command sees, not the image
    created_by: str
    mounts: tuple[Mount, ...]
    recorded_config: dict[str, Any]  # the image's container_config
    network: str | None = None  # RUN --network; None: the build's


async def run_container(step: RunStep) -> str:
    """The image the step makes; StepFailed when its command exits non-zero."""
    config, request, containers = step.config, step.request, step.containers
    env = tuple([*(config.get("Env") or ()), *(f"{k}={v}" for k, v in step.build_env.items())])
    host = HostConfig(network_mode=step.network or request.network_mode or "",
                      shm_size=request.shm_size, extra_hosts=request.extra_hosts or None,
                      mounts=step.mounts or None, **request.resources)  # type: ignore[arg-type]
    record = await containers.container_create("", ContainerConfig(
        image=step.image_id, cmd=tuple(step.cmd), entrypoint=(), env=env,
        user=config.get("User") or "", working_dir=config.get("WorkingDir") or "",
        labels={}, attach_stdout=True, attach_stderr=True), host)
    await step.say(f" ---> Running in {short_id(record.id)}\n")
    keep = False
    try:
        waiter = containers.ctx.states.wait(record, "next-exit")
        await containers.container_start(record.id)
        _, batches = containers.container_logs(record.id, follow=True, since_ns=0, until_ns=0,
                                               tail=None)
        async for batch in batches:
            for entry in batch:
                await step.say(entry.line.decode("utf-8", "replace"))
        code, _ = await waiter
        if code != 0:
            keep = not request.remove and not request.force_remove
            raise StepFailed(f"The command '{' '.join(step.cmd)}' returned a non-zero code: "
                             f"{code}", code)
        upper = (await asyncio.to_thread(step.images.rootfs_mounts, record.id))[0] \
            .option("upperdir") or ""
        await asyncio.to_thread(drop_file_stubs, upper, step.mounts)
        return await asyncio.to_thread(commit_child, step.images, step.image_id, ChildImage(
            config=config, created_by=step.created_by, upper=upper, author=step.author,
            container=record.id, container_config=step.recorded_config))
    finally:
        if not keep and (request.remove or request.force_remove):
            await containers.container_rm(record.id, force=True)
            await step.say(f"Removing intermediate container {short_id(record.id)}\n")
