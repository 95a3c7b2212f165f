"""ExecSync: a command run to its end in a running container, its output collected,
killed at its timeout."""

from __future__ import annotations

import asyncio
import signal

from moorage.cri.backends import Containers
from moorage.errors import MoorError
from moorage.model.config import ExecConfig
from moorage.protocol import stdcopy

# Output kept per stream, as containerd's maxExecSyncSize (16 MiB).
_MAX_OUTPUT = 16 << 20


class ExecTimeout(MoorError):
    """The command outlived its timeout (gRPC DeadlineExceeded, as containerd)."""


async def exec_sync(containers: Containers, container_id: str, cmd: list[str],
                    timeout: int) -> tuple[bytes, bytes, int]:
    record = await containers.execs.exec_create(container_id, ExecConfig(
        cmd=tuple(cmd), attach_stdout=True, attach_stderr=True))
    stream = await containers.execs.exec_start(record.id, detach=False)
    output = {stdcopy.STDOUT: bytearray(), stdcopy.STDERR: bytearray()}

    async def collect() -> None:
        while (frame := await stream.read()) is not None:
            kind, payload = frame
            kept = output.get(kind)
            if kept is not None and len(kept) < _MAX_OUTPUT:
                kept += payload[:_MAX_OUTPUT - len(kept)]

    try:
        await asyncio.wait_for(collect(), timeout if timeout > 0 else None)
    except TimeoutError:
        # The command goes with its timeout, as containerd kills it.
        await containers.execs.exec_kill(record.id, int(signal.SIGKILL))
        raise ExecTimeout(f"command {cmd!r} timed out after {timeout}s") from None
    finally:
        stream.close()
    exit_code = stream.exit.exit_code if stream.exit is not None else 126
    return bytes(output[stdcopy.STDOUT]), bytes(output[stdcopy.STDERR]), exit_code
