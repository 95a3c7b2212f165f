"""What the container and exec routes need from the daemon (implemented by ContainerService).

The daemon answers with its records (moorage.model.records); the routes encode them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from moorage.model.config import ContainerConfig, ExecConfig, HostConfig
from moorage.model.networks import ContainerNetwork, EndpointRequest, PublishedPort
from moorage.model.records import ContainerRecord, ExecRecord


class ProcessStream(Protocol):
    """A process's output frames and its stdin (attach, exec start)."""

    pid: int
    exit: dict | None

    async def read(self) -> tuple[int, bytes] | None:
        """(stream id, payload), or None once the process is done."""

    async def write(self, data: bytes) -> None: ...

    def close_stdin(self) -> None: ...

    def close(self) -> None: ...

    def detach(self) -> None:
        """close(), for a client that detached (its detach keys)."""


class TarChunks(Protocol):
    """A tar made as it is read; aclose() ends it and what it holds, read or not."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def write_to(self, body: Any) -> None:
        """Instead of the chunks: the tar written by a worker thread into `body`, which
        has write(bytes) and sendfile(fd, size) (the file's bytes from its offset)."""

    async def aclose(self) -> None: ...


class LogLine(Protocol):
    stream: str
    time: str
    line: bytes


class ExecBackend(Protocol):
    def get(self, exec_id: str) -> ExecRecord:
        """NotFound("No such exec instance: x")."""

    async def exec_create(self, ref: str, config: ExecConfig) -> ExecRecord:
        """Conflict when the container is not running or paused."""

    async def exec_start(self, exec_id: str, *, detach: bool) -> ProcessStream:
        """Conflict when already started; the stream ends when the process exits."""

    async def exec_resize(self, exec_id: str, height: int, width: int) -> None:
        """Waits for the start (10 s); InvalidParameter when it failed, NotFound once
        the process has ended."""

    def ids_of(self, container_id: str) -> list[str]: ...


class ContainerBackend(Protocol):
    execs: ExecBackend

    def get(self, ref: str) -> ContainerRecord:
        """By id, name or unique id prefix; NotFound("No such container: x")."""

    async def container_create(self, name: str, config: ContainerConfig, host: HostConfig,
                               endpoint: EndpointRequest | None = None) -> ContainerRecord:
        """NotFound for a missing image, Conflict for a taken name, InvalidParameter."""

    async def container_start(self, ref: str) -> None:
        """NotModified when running; InvalidParameter/SystemFailure when the runtime fails."""

    async def container_stop(self, ref: str, timeout: int | None = None,
                             sig: str = "") -> None: ...

    async def container_restart(self, ref: str, timeout: int | None = None,
                                sig: str = "") -> None: ...

    async def container_kill(self, ref: str, sig: str = "") -> None: ...

    async def container_pause(self, ref: str, pause: bool) -> None: ...

    def container_wait(self, ref: str, condition: str) -> asyncio.Future:
        """Registers at once; the future gives (StatusCode, Error) when `condition` holds."""

    async def container_rm(self, ref: str, force: bool = False,
                           remove_volumes: bool = False) -> None:
        """`remove_volumes` (?v=1) also removes the container's anonymous volumes."""

    async def container_rename(self, ref: str, new_name: str) -> None: ...

    async def container_list(self, *, all: bool, limit: int | None,
                       filters: dict[str, list[str]]) -> list[ContainerRecord]: ...

    def container_logs(self, ref: str, *, follow: bool, since_ns: int, until_ns: int,
                       tail: int | None
                       ) -> tuple[ContainerRecord, AsyncIterator[list[LogLine]]]:
        """The log's entries, in batches: one write each."""

    async def container_attach(self, ref: str, *, stdin: bool, stdout: bool,
                               stderr: bool) -> tuple[ContainerRecord, asyncio.Future]:
        """The future gives the ProcessStream once the container runs."""

    async def container_top(self, ref: str, ps_args: str) -> tuple[list[str],
                                                                    list[list[str]]]:
        """(Titles, Processes) of `ps ps_args` for the container's processes."""

    def container_stats(self, ref: str, *, stream: bool,
                        one_shot: bool) -> AsyncIterator[dict]:
        """Docker's stats documents: one, or one a second while the container runs."""

    async def container_path_stat(self, ref: str, path: str) -> dict:
        """name, size, mode (Go's bits), mtime, linkTarget; NotFound for a missing path."""

    async def container_get_archive(self, ref: str, path: str
                                    ) -> tuple[dict, TarChunks]:
        """The path's stat and its tar, made as it is read."""

    async def container_put_archive(self, ref: str, path: str, body: AsyncIterator[bytes], *,
                                    direct: Callable[[], list[memoryview] | None] | None,
                                    no_overwrite_dir_non_dir: bool,
                                    copy_uid_gid: bool) -> None:
        """Unpack the tar `body` into the directory `path`. `direct`, where given, reads
        the same body from a worker thread (blocking; the views are valid until the next
        call; None at the end), and then `body` is not read."""

    async def container_update(self, ref: str, body: dict) -> None:
        """Resources (zero: unchanged) and restart policy, live while it runs."""

    async def container_export(self, ref: str) -> TarChunks:
        """The tar of the container's root filesystem, made as it is read."""

    async def containers_prune(self, filters: dict[str, list[str]]) -> tuple[list[str], int]:
        """(removed ids, bytes reclaimed); InvalidParameter for an unknown filter."""

    def network_settings(self, container_id: str) -> list[ContainerNetwork]:
        """The container's endpoints, first network first."""
        ...

    def published_ports(self, container_id: str) -> list[PublishedPort]:
        """A running container's published ports; none otherwise."""
        ...

    def graph_driver_data(self, container: ContainerRecord) -> dict[str, str]:
        """overlay2's LowerDir, MergedDir, UpperDir and WorkDir of the container."""

    async def container_size(self, container: ContainerRecord) -> tuple[int, int]:
        """(SizeRw, SizeRootFs) in bytes; walks the writable layer."""

    async def container_resize(self, ref: str, height: int, width: int) -> None: ...
