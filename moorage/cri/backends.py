"""What the CRI service needs of the engine: the engine's services satisfy these."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from moorage.model.config import ContainerConfig, ExecConfig, HostConfig
from moorage.model.distribution import PullRequest
from moorage.model.image import DeleteItem, ImageSummary
from moorage.model.records import ContainerRecord, ExecRecord


class ExitStatus(Protocol):
    exit_code: int


class ExecStream(Protocol):
    pid: int
    exit: ExitStatus | None

    async def read(self) -> tuple[int, bytes] | None: ...

    def close(self) -> None: ...


class Execs(Protocol):
    async def exec_create(self, ref: str, config: ExecConfig) -> ExecRecord: ...

    async def exec_start(self, exec_id: str, *, detach: bool) -> Any: ...

    async def exec_kill(self, exec_id: str, signal: int) -> None: ...


class Containers(Protocol):
    execs: Any

    def get(self, ref: str) -> ContainerRecord: ...

    async def container_create(self, name: str, config: ContainerConfig, host: HostConfig,
                               endpoint: Any = None,
                               cri_log_path: str = "") -> ContainerRecord: ...

    async def container_start(self, ref: str) -> None: ...

    async def container_stop(self, ref: str, timeout: int | None = None,
                             sig: str = "") -> None: ...

    async def container_kill(self, ref: str, sig: str = "") -> None: ...

    async def container_rm(self, ref: str, force: bool = False,
                           remove_volumes: bool = False) -> None: ...

    async def container_update(self, ref: str, body: dict) -> None: ...

    async def container_reopen_log(self, ref: str) -> None: ...

    async def container_resize(self, ref: str, height: int, width: int,
                               exec_id: str = "") -> None: ...

    async def container_attach(self, ref: str, *, stdin: bool, stdout: bool,
                               stderr: bool) -> tuple[ContainerRecord, Any]: ...

    def container_stats(self, ref: str, *, stream: bool,
                        one_shot: bool) -> AsyncIterator[dict]: ...


class Images(Protocol):
    def images(self, filters: dict[str, list[str]], all_images: bool) -> list[ImageSummary]: ...

    def repo_tags(self, image_id: str) -> list[str]: ...

    def repo_digests(self, image_id: str) -> list[str]: ...

    def image_delete(self, name: str, force: bool, prune: bool) -> list[DeleteItem]: ...

    async def pull_image(self, request: PullRequest, emit: Any) -> None: ...

    def resolve(self, name: str) -> Any: ...
