"""Requests to a container's shim, each with a deadline, their failures in the error
taxonomy. A shim that does not answer must not hold its container's lock forever."""

from __future__ import annotations

import asyncio

from moorage.daemon.containers.paths import ContainerPaths
from moorage.daemon.shims import ShimError, ShimStream, request
from moorage.errors import Conflict, NotFound, SystemFailure
from moorage.model.records import ContainerRecord

SHIM_DEADLINE = 5.0  # seconds a shim has to answer a request


async def call(paths: ContainerPaths, record: ContainerRecord, message: dict) -> dict:
    """The shim's reply; Conflict when the shim is gone (the container is not running),
    SystemFailure when it or the runtime refused."""
    try:
        async with asyncio.timeout(SHIM_DEADLINE):
            return await request(paths.socket(record), message)
    except TimeoutError:
        raise SystemFailure(f"container {record.id}: its shim did not answer "
                            f"{message.get('op')!r} within {SHIM_DEADLINE:g}s") from None
    except (NotFound, ConnectionError):  # the shim is gone or going with its container
        raise Conflict(f"Container {record.id} is not running") from None
    except ShimError as err:
        raise SystemFailure(str(err)) from None
    except OSError as err:
        raise SystemFailure(f"container {record.id}: its shim: {err}") from None


async def open_stream(paths: ContainerPaths, record: ContainerRecord,
                      message: dict) -> ShimStream:
    """An attach or exec stream, its failures as call()'s."""
    try:
        async with asyncio.timeout(SHIM_DEADLINE):
            return await ShimStream.open(paths.socket(record), message)
    except TimeoutError:
        raise SystemFailure(f"container {record.id}: its shim did not answer "
                            f"{message.get('op')!r} within {SHIM_DEADLINE:g}s") from None
    except (NotFound, ConnectionError):  # the shim is gone or going with its container
        raise Conflict(f"Container {record.id} is not running") from None
    except ShimError as err:
        raise SystemFailure(str(err)) from None
    except OSError as err:
        raise SystemFailure(f"container {record.id}: its shim: {err}") from None
