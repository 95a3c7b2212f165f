"""What the daemon, the zygote and a shim say to each other: the typed messages.

Requests are one JSON object per line with an "op" key; each answer is one JSON line.
After an `attach` or `exec` request is accepted the connection carries stdcopy frames
(moorage.protocol.stdcopy) from the shim, ending with one EXIT frame whose payload is
the ExitRecord, and raw stdin bytes from the daemon; the daemon half-closes for stdin
EOF. Every message below is a class with __slots__ whose slots are its JSON keys, the
keys of the dicts they replaced (less an `"ok": true` nobody read): shims outlive the
daemon, and a new daemon re-adopts the shims an older one forked (and the other way
round). A key a message lacks takes its default; keys it does not know are ignored.

Imported by the zygote, so every shim maps what it imports: json_codec and plain
slotted classes instead of json and dataclasses, which with their own imports (re,
enum, inspect) cost ~3.9 MB of RSS in the zygote and in each shim.
"""

from __future__ import annotations

from moorage import json_codec

# Not typing.TYPE_CHECKING at run time: see moorage/shim/driver.py.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeVar

    M = TypeVar("M", bound="Message")

# Private to the daemon↔shim link: Docker's stream ids stop at 3.
EXIT_STREAM = 255


class Message:
    """A message: its slots are its JSON keys; a request's class names its `op`."""

    __slots__ = ()
    op = ""

    def to_dict(self) -> dict:
        data = {name: getattr(self, name) for name in self.__slots__}
        if self.op:
            data["op"] = self.op
        return data

    def encode(self) -> bytes:
        """One line of the wire."""
        return json_codec.dumps(self.to_dict()).encode() + b"\n"

    @classmethod
    def from_dict(cls: type[M], data: dict) -> M:
        return cls(**{name: data[name] for name in cls.__slots__ if name in data})


# ---------------------------------------------------------------- the daemon's requests


class CreateOutcome(Message):
    """The runtime create's outcome: CreateResult, or Failure."""

    __slots__ = ()
    op = "created"


class Wait(Message):
    """Answered by the init's ExitRecord once it has exited (at once when it has)."""

    __slots__ = ()
    op = "wait"


class Start(Message):
    """Answered by Started."""

    __slots__ = ()
    op = "start"


class State(Message):
    """Answered by ShimState."""

    __slots__ = ()
    op = "state"


class Kill(Message):
    __slots__ = ("all", "signal")
    op = "kill"

    def __init__(self, signal: int, all: bool = False) -> None:
        self.signal = signal
        self.all = all      # every process of the container, not only its init


class KillExec(Message):
    """Its own op, not Kill with an exec id: an older shim answers an unknown request
    instead of signalling the container's init."""

    __slots__ = ("exec_id", "signal")
    op = "kill_exec"

    def __init__(self, exec_id: str, signal: int) -> None:
        self.exec_id = exec_id
        self.signal = signal


class Pause(Message):
    __slots__ = ()
    op = "pause"


class Resume(Message):
    __slots__ = ()
    op = "resume"


class Resize(Message):
    """The terminal of the init, or of the exec `exec_id`."""

    __slots__ = ("exec_id", "h", "w")
    op = "resize"

    def __init__(self, h: int, w: int, exec_id: str = "") -> None:
        self.h = h
        self.w = w
        self.exec_id = exec_id


class ExecStatus(Message):
    """Answered by ExecState."""

    __slots__ = ("exec_id",)
    op = "exec_status"

    def __init__(self, exec_id: str) -> None:
        self.exec_id = exec_id


class ReopenLog(Message):
    """The log file opened anew at its path (kubelet renamed it to rotate it)."""

    __slots__ = ()
    op = "reopen_log"


class Attach(Message):
    """A stream of the init's stdio; answered by StreamOpened, then frames."""

    __slots__ = ("stderr", "stdin", "stdout")
    op = "attach"

    def __init__(self, stdin: bool = False, stdout: bool = False, stderr: bool = False) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr


class Exec(Message):
    """A process started in the container (`process`: the OCI process object) and a
    stream of its stdio; answered by StreamOpened, then frames."""

    __slots__ = ("console_size", "exec_id", "process", "stderr", "stdin", "stdout")
    op = "exec"

    def __init__(self, exec_id: str, process: dict, stdin: bool = False, stdout: bool = False,
                 stderr: bool = False, console_size: tuple[int, ...] | list[int] = ()) -> None:
        self.exec_id = exec_id
        self.process = process
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.console_size = console_size    # (height, width), or empty


REQUESTS: dict[str, type[Message]] = {cls.op: cls for cls in (
    CreateOutcome, Wait, Start, State, Kill, KillExec, Pause, Resume, Resize, ExecStatus,
    ReopenLog, Attach, Exec)}


def decode_request(line: bytes) -> Message:
    """A request line as its message; ValueError for one that is not a known request."""
    data = json_codec.loads(line)
    if not isinstance(data, dict):
        raise ValueError("a request is a JSON object")
    cls = REQUESTS.get(data.get("op"))  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"unknown request {data.get('op')!r}")
    return cls.from_dict(data)


# ---------------------------------------------------------------- the answers


class Failure(Message):
    """Any request's refusal: the runtime's or the shim's message (and the errno, when
    the runtime names one)."""

    __slots__ = ("errno", "error")

    def __init__(self, error: str, errno: int | None = None) -> None:
        self.error = error
        self.errno = errno


class Ok(Message):
    __slots__ = ()


class Forked(Message):
    """The zygote's answer: the shim's pid."""

    __slots__ = ("pid",)

    def __init__(self, pid: int) -> None:
        self.pid = pid


class CreateResult(Message):
    """The shim's pid and the container's init's, which waits for Start."""

    __slots__ = ("init_pid", "pid")

    def __init__(self, pid: int = 0, init_pid: int = 0) -> None:
        self.pid = pid
        self.init_pid = init_pid


class Started(Message):
    __slots__ = ("pid",)

    def __init__(self, pid: int = 0) -> None:
        self.pid = pid


class StreamOpened(Message):
    """An attach or exec accepted: the process's pid; frames follow."""

    __slots__ = ("pid",)

    def __init__(self, pid: int = 0) -> None:
        self.pid = pid


class ExecState(Message):
    __slots__ = ("exit_code", "pid", "running")

    def __init__(self, pid: int = 0, exit_code: int | None = None,
                 running: bool = False) -> None:
        self.pid = pid
        self.exit_code = exit_code
        self.running = running


class ShimState(Message):
    __slots__ = ("pid", "started")

    def __init__(self, pid: int = 0, started: bool = False) -> None:
        self.pid = pid
        self.started = started


class ExitRecord(Message):
    """A process's end: the answer to Wait, the EXIT frame's payload, and (the init's)
    the exit file the shim writes before it answers. 255 when a record lacks a code."""

    __slots__ = ("error", "exit_code", "finished_at", "oom_killed")

    def __init__(self, exit_code: int = 255, oom_killed: bool = False, finished_at: str = "",
                 error: str = "") -> None:
        self.exit_code = exit_code
        self.oom_killed = oom_killed
        self.finished_at = finished_at      # RFC 3339; "" when the shim did not say
        self.error = error


def decode_reply(line: bytes, cls: type[M]) -> M | Failure:
    """An answer line as `cls`, or as the Failure it is."""
    data = json_codec.loads(line)
    if not isinstance(data, dict):
        raise ValueError("an answer is a JSON object")
    # An ExitRecord has an "error" of its own (empty, or why the exit is unknown).
    if "error" in data and not (cls is ExitRecord and "exit_code" in data):
        return Failure.from_dict(data)
    return cls.from_dict(data)


class ShimConfig(Message):
    """The zygote's one request: everything a shim needs to create, run and clean up
    one container. Answered by Forked, or Failure."""

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

    @classmethod
    def from_dict(cls, data: dict) -> ShimConfig:
        data = dict(data)
        data["runtime_args"] = tuple(data["runtime_args"])
        data["console_size"] = tuple(data["console_size"])
        data["log_rotation"] = tuple(data.get("log_rotation") or (0, 1, False))
        data.setdefault("log_format", "json-file")
        return cls(**data)
