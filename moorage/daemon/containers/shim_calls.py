"""Requests to a container's shim, their failures in the error taxonomy."""

from __future__ import annotations

from moorage.daemon.containers.paths import ContainerPaths
from moorage.daemon.shims import ShimError, ShimStream, request
from moorage.errors import Conflict, NotFound, SystemFailure


async def call(paths: ContainerPaths, container_id: str, message: dict) -> dict:
    """The shim's reply; Conflict when the shim is gone (the container is not running),
    SystemFailure when it or the runtime refused."""
    try:
        return await request(paths.socket(container_id), message)
    except NotFound:
        raise Conflict(f"Container {container_id} is not running") from None
    except ShimError as err:
        raise SystemFailure(str(err)) from None
    except OSError as err:
        raise SystemFailure(f"container {container_id}: its shim: {err}") from None


async def open_stream(paths: ContainerPaths, container_id: str, message: dict) -> ShimStream:
    """An attach or exec stream, its failures as call()'s."""
    try:
        return await ShimStream.open(paths.socket(container_id), message)
    except NotFound:
        raise Conflict(f"Container {container_id} is not running") from None
    except ShimError as err:
        raise SystemFailure(str(err)) from None
    except OSError as err:
        raise SystemFailure(f"container {container_id}: its shim: {err}") from None
