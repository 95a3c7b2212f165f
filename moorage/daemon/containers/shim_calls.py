"""Requests to a container's shim, their failures in the error taxonomy. Every
request has the deadline shim_client.py gives it, so a shim that does not answer
never holds its container's lock for long."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from moorage.daemon.containers.paths import ContainerPaths
from moorage.daemon.containers.shim_client import ShimError, ShimStream, request
from moorage.errors import Conflict, NotFound, SystemFailure
from moorage.model.records import ContainerRecord
from moorage.shim.wire import Message, Ok

T = TypeVar("T")
M = TypeVar("M", bound=Message)


async def call(paths: ContainerPaths, record: ContainerRecord, message: Message,
               answer: type[M] = Ok) -> M:  # type: ignore[assignment]
    """The shim's reply, an `answer`; Conflict when the shim is gone (the container is
    not running), SystemFailure when it or the runtime refused, or it did not answer in
    time."""
    return await _mapped(record, lambda: request(paths.socket(record), message, answer))


async def open_stream(paths: ContainerPaths, record: ContainerRecord,
                      message: Message) -> ShimStream:
    """An attach or exec stream, its failures as call()'s."""
    return await _mapped(record, lambda: ShimStream.open(paths.socket(record), message))


async def _mapped(record: ContainerRecord, send: Callable[[], Awaitable[T]]) -> T:
    try:
        return await send()
    except (NotFound, ConnectionError):  # the shim is gone or going with its container
        raise Conflict(f"Container {record.id} is not running") from None
    except ShimError as err:
        raise SystemFailure(str(err)) from None
    except OSError as err:
        raise SystemFailure(f"container {record.id}: its shim: {err}") from None
