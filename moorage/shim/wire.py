"""What the daemon, the zygote and a shim say to each other.

Requests are one JSON object per line. After an `attach` or `exec` request is
accepted the connection carries stdcopy frames (moorage.protocol.stdcopy) from
the shim, ending with one EXIT frame whose payload is the JSON exit record,
and raw stdin bytes from the daemon; the daemon half-closes for stdin EOF.

Imported by the zygote, so every shim maps what it imports: json_codec and a
plain class instead of json and dataclasses, which with their own imports
(re, enum, inspect) cost ~3.9 MB of RSS in the zygote and in each shim.
"""

from __future__ import annotations

from moorage import json_codec

# Private to the daemon↔shim link: Docker's stream ids stop at 3.
EXIT_STREAM = 255


class ShimConfig:
    """Everything a shim needs to create, run and clean up one container."""

    __slots__ = ("bundle", "console_size", "container_id", "exit_file", "log_format", "log_path",
                 "log_rotation", "open_stdin", "runtime_args", "runtime_path", "runtime_root",
                 "socket_path", "stdin_once", "tty")

    def __init__(self, *, container_id: str, bundle: str, runtime_root: str,
                 runtime_path: str, runtime_args: tuple[str, ...], socket_path: str,
                 exit_file: str, log_path: str, tty: bool, open_stdin: bool, stdin_once: bool,
                 console_size: tuple[int, int],
                 log_rotation: tuple[int, int, bool] = (0, 1, False),
                 log_format: str = "json-file") -> None:
        self.container_id = container_id
        self.bundle = bundle
        self.runtime_root = runtime_root    # the runtime's state folder (runc's --root)
        self.runtime_path = runtime_path    # "" for moor-runtime in-process, else runc-like
        self.runtime_args = runtime_args
        self.socket_path = socket_path
        self.exit_file = exit_file
        self.log_path = log_path            # "" when the log driver is `none`
        self.log_rotation = log_rotation    # (max size, max files, compress); 0: no limit
        self.log_format = log_format        # "json-file", or "cri" for kubelet's format
        self.tty = tty
        self.open_stdin = open_stdin
        self.stdin_once = stdin_once
        self.console_size = console_size    # (height, width) of the pty before start; (0, 0) unset

    def to_json(self) -> str:
        return json_codec.dumps({name: getattr(self, name) for name in self.__slots__})

    @classmethod
    def from_json(cls, text: str | bytes) -> ShimConfig:
        data = json_codec.loads(text)
        assert isinstance(data, dict)
        data["runtime_args"] = tuple(data["runtime_args"])
        data["console_size"] = tuple(data["console_size"])
        data["log_rotation"] = tuple(data.get("log_rotation") or (0, 1, False))
        data.setdefault("log_format", "json-file")
        return cls(**data)


def encode(message: dict) -> bytes:
    return json_codec.dumps(message).encode() + b"\n"


def decode(line: bytes) -> dict:
    message = json_codec.loads(line)
    assert isinstance(message, dict)
    return message
