"""What the daemon, the zygote and a shim say to each other.

Requests are one JSON object per line. After an `attach` or `exec` request is
accepted the connection carries stdcopy frames (moorage.protocol.stdcopy) from
the shim, ending with one EXIT frame whose payload is the JSON exit record,
and raw stdin bytes from the daemon; the daemon half-closes for stdin EOF.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

# Private to the daemon↔shim link: Docker's stream ids stop at 3.
EXIT_STREAM = 255


@dataclass(frozen=True, slots=True)
class ShimConfig:
    """Everything a shim needs to create, run and clean up one container."""

    container_id: str
    bundle: str
    runtime_root: str       # the runtime's state folder (runc's --root)
    runtime_path: str       # "" for moor-runtime in-process, else a runc-compatible binary
    runtime_args: tuple[str, ...]
    socket_path: str
    exit_file: str
    log_path: str           # "" when the log driver is `none`
    tty: bool
    open_stdin: bool
    stdin_once: bool
    console_size: tuple[int, int]   # (height, width) of the pty before start; (0, 0) unset

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ShimConfig:
        data = json.loads(text)
        data["runtime_args"] = tuple(data["runtime_args"])
        data["console_size"] = tuple(data["console_size"])
        return cls(**data)


def encode(message: dict) -> bytes:
    return json.dumps(message).encode() + b"\n"
