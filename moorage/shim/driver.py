"""The runtime operations a shim needs, in-process (moor-runtime) or by exec (runc, crun).

Both take the container's stdio from the caller's fds 0-2 and, with a
terminal, send the pty master to a console socket (runc's protocol), so the
shim treats them alike.

The zygote imports this module, so every shim maps what it imports: the
runc path's subprocess and tempfile (~2.4 MB of RSS with their imports) are
imported by the shims that use runc, and _signal stands in for signal, whose
IntEnums import enum.
"""

from __future__ import annotations

import os
from _signal import SIG_DFL, SIGCHLD, SIGPIPE
from _signal import signal as set_handler
from _socket import AF_UNIX, SOCK_SEQPACKET, socketpair
from _socket import socket as Socket

from moorage import fdpass, json_codec
from moorage.errors import MoorError
from moorage.runtime import container as rt
from moorage.runtime.cgroups import load_manager
from moorage.runtime.execfifo import release
from moorage.runtime.execute import exec_process

# Not typing.TYPE_CHECKING, nor collections.abc at run time: the zygote imports
# this module, and collections with its imports would be mapped in every shim.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    T = TypeVar("T")


class RuntimeFailed(MoorError):
    """The runtime refused or failed an operation; the message is the runtime's."""


def _default_sigpipe() -> None:
    # Python ignores SIGPIPE and exec keeps ignored dispositions: the
    # container's processes must get the default back (as under runc).
    set_handler(SIGPIPE, SIG_DFL)


class Driver:
    def __init__(self, root: str, path: str, args: tuple[str, ...]) -> None:
        self.root = root
        self.path = path
        self.args = args

    def _run(self, *argv: str, stdio: bool = False) -> str:
        """Run the runtime; with `stdio` it passes our fds 0-2 on to the container
        (runc's pass-through mode), so its errors come through --log instead."""
        import subprocess
        import tempfile

        if not stdio:
            done = subprocess.run([self.path, *self.args, "--root", self.root, *argv],
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeFailed(_runc_error(done.stderr) or f"{self.path} {argv[0]} failed")
            return done.stdout
        with tempfile.NamedTemporaryFile("r", suffix=".log") as log:
            done = subprocess.run([self.path, *self.args, "--root", self.root, "--log",
                                   log.name, "--log-format", "json", *argv],
                                  preexec_fn=_default_sigpipe)
            if done.returncode != 0:
                raise RuntimeFailed(_runc_error(log.read()) or f"{self.path} {argv[0]} failed")
        return ""

    def create(self, container_id: str, bundle: str, console_socket: str | None,
               pid_file: str) -> dict:
        """Create the container (its init waits for start). What the shim keeps of it:
        the init's `pid`; `oom_file`, counting its cgroup's OOM kills (read_oom_kills),
        which the shim reads itself at the exit, before it reports it; `fifo` and
        `start_time`, with which the shim's start skips the state (Driver.release) when
        no poststart hook is to run. They are "" under runc, whose cgroup and exec fifo
        are its own.
        """
        if not self.path:
            previous = set_handler(SIGPIPE, SIG_DFL)
            try:
                # No pid file: the pid is in the state the call returns.
                created = rt.create(rt.CreateOptions(
                    root=self.root, container_id=container_id, bundle=bundle,
                    console_socket=console_socket))
            except MoorError as err:
                raise RuntimeFailed(str(err)) from None
            finally:
                set_handler(SIGPIPE, previous)
            st = created.state
            fast_start = not (st.config.get("hooks") or {}).get("poststart")
            return {"pid": st.pid,
                    "oom_file": load_manager(st.cgroup_paths).oom_kills_file(),
                    "fifo": st.fifo if fast_start else "",
                    "start_time": st.start_time or ""}
        argv = ["create", "--bundle", bundle, "--pid-file", pid_file]
        if console_socket:
            argv += ["--console-socket", console_socket]
        self._run(*argv, container_id, stdio=True)
        return {"pid": _take_pid(pid_file), "oom_file": "", "fifo": "", "start_time": ""}

    def start(self, container_id: str) -> None:
        """In a child (in_child): the runtime's whole start, poststart hooks included."""
        if self.path:
            self._run("start", container_id)
            return
        try:
            rt.start(self.root, container_id)
        except MoorError as err:
            raise RuntimeFailed(str(err)) from None

    @staticmethod
    def release(fifo: str, pid: int, start_time: str) -> None:
        """The start of a container `create` gave a `fifo` for; the state (the whole
        spec) is not parsed, there being no poststart hook to run. In the shim itself,
        unlike the other operations: a fork is the dearest step of a start on a loaded
        machine (docker run --rm 0.74-0.87x in an A/B at load 6-7), and what the call
        touches dirties ~10-15 KiB of the shim's shared pages (PSS added per container
        1432 -> 1446 KiB, measured with bench/engine.py)."""
        try:
            release(fifo, pid, start_time or None)
        except (OSError, MoorError) as err:
            raise RuntimeFailed(str(err)) from None

    def kill(self, container_id: str, sig: int, all_processes: bool) -> None:
        if self.path:
            self._run("kill", *(["--all"] if all_processes else []), container_id, str(sig))
            return
        rt.kill(self.root, container_id, sig, all_processes)

    def pause(self, container_id: str, paused: bool) -> None:
        if self.path:
            self._run("pause" if paused else "resume", container_id)
        elif paused:
            rt.pause(self.root, container_id)
        else:
            rt.resume(self.root, container_id)

    def delete(self, container_id: str) -> None:
        if self.path:
            self._run("delete", "--force", container_id)
            return
        rt.delete(self.root, container_id, force=True)

    def exec(self, container_id: str, process: dict, console_socket: str | None,
             pid_file: str) -> int:
        """Start `process` in the container, detached; return its pid."""
        if not self.path:
            previous = set_handler(SIGPIPE, SIG_DFL)
            try:
                exec_process(self.root, container_id, process, detach=True,
                             pid_file=pid_file, console_socket=console_socket,
                             preserve_fds=0)
            except MoorError as err:
                raise RuntimeFailed(str(err)) from None
            finally:
                set_handler(SIGPIPE, previous)
        else:
            import tempfile

            with tempfile.NamedTemporaryFile("w", suffix=".json",
                                             dir=os.path.dirname(pid_file)) as f:
                f.write(json_codec.dumps(process))
                f.flush()
                argv = ["exec", "--process", f.name, "--detach", "--pid-file", pid_file]
                if console_socket:
                    argv += ["--console-socket", console_socket]
                self._run(*argv, container_id, stdio=True)
        return _take_pid(pid_file)


def in_child(call: Callable[..., T], *args: object,
             meanwhile: Callable[[], None] | None = None) -> T:
    """`call(*args)` in a forked child; its result (JSON) or its error comes back on a pipe.
    `meanwhile` runs in the caller while the child works; its error is raised once the
    child has answered.

    The shim runs every runtime operation so: what the runtime allocates and touches
    (the parsed spec, its modules' objects; for runc, subprocess and tempfile) then
    dirties the child's copy of the zygote's pages, not the shim's, which stays small
    for the container's whole life. A process the runtime starts is the child's child;
    once the child exits it is the shim's, the shim being its subreaper.

    The child is not waited for: its answer is its last act, and the teardown of its
    address space (~0.3 ms) would only delay the caller. The shim's reaper collects it
    (Shim.serve reaps once before its loop, then at every SIGCHLD).
    """
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(read_end)
            _answer(write_end, call, *args)
        finally:
            os._exit(0)
    os.close(write_end)
    return _collect(read_end, meanwhile)


def _answer(write_end: int, call: Callable[..., object], *args: object) -> None:
    """In the child: `call(*args)`, its result or its error as one JSON line."""
    try:
        message = {"result": call(*args)}
    except RuntimeFailed as err:
        message = {"error": str(err)}
    except BaseException as err:
        message = {"error": f"shim: {type(err).__name__}: {err}"}
    os.write(write_end, json_codec.dumps(message).encode() + b"\n")


def _collect(read_end: int, meanwhile: Callable[[], None] | None) -> Any:
    """In the caller: `meanwhile`, then the child's answer (closing `read_end`)."""
    try:
        if meanwhile is not None:
            meanwhile()
    finally:
        # Up to the newline, not to EOF: a process started holds a copy of the pipe
        # until it execs.
        chunks = [b""]
        while not chunks[-1].endswith(b"\n") and (chunk := os.read(read_end, 65536)):
            chunks.append(chunk)
        os.close(read_end)
    if len(chunks) == 1:
        raise RuntimeFailed("shim: the runtime's process ended without an answer")
    answer = json_codec.loads(b"".join(chunks))
    if "error" in answer:
        raise RuntimeFailed(answer["error"])
    return answer["result"]


class AheadChild:
    """The child of a shim forked ahead, while it waits for its container (zygote.Spare):
    the container's create runs there as in in_child's child, without the fork on the
    start's path (~0.5 ms, measured). Meanwhile it warms up on the spec of the last
    container the zygote saw (runtime.container.warm_up), ~1 ms more. It ends unused
    when the shim does (its channel closes)."""

    def __init__(self, inherited: Socket, last_spec: bytes) -> None:
        """`inherited`: a socket of the shim's that the child must not hold."""
        self.channel, theirs = socketpair(AF_UNIX, SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            try:
                self.channel.close()
                inherited.close()
                if last_spec:
                    try:
                        rt.warm_up(last_spec)
                    except Exception:  # the create meets the same error and reports it
                        pass
                _serve_ahead(theirs)
            finally:
                os._exit(0)
        theirs.close()

    def create(self, driver: Driver, container_id: str, bundle: str,
               console_socket: str | None, pid_file: str,
               meanwhile: Callable[[], None] | None = None) -> dict:
        """Driver.create in the child, on the caller's fds 0-2, as in_child would;
        OSError when the child is gone before it got the request (the caller then
        forks one)."""
        request = json_codec.dumps({
            "root": driver.root, "path": driver.path, "args": list(driver.args),
            "container_id": container_id, "bundle": bundle, "console": console_socket,
            "pid_file": pid_file}).encode()
        read_end, write_end = os.pipe()
        try:
            fdpass.send(self.channel, request, (write_end, 0, 1, 2))
        except OSError:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
            self.channel.close()
        return _collect(read_end, meanwhile)


def _serve_ahead(channel: Socket) -> None:
    """The ahead child: one create request with its answer pipe and stdio, or none."""
    data, fds = fdpass.receive(channel, 1 << 16, 4)
    channel.close()
    if not data or len(fds) != 4:
        return
    # The zygote ignores SIGCHLD, and an ignored signal stays so across exec: the shim
    # sets the default before its runtime's children fork, as in_child's inherit it.
    set_handler(SIGCHLD, SIG_DFL)
    for fd, target in zip(fds[1:], (0, 1, 2), strict=True):
        os.dup2(fd, target)
        os.close(fd)
    request = json_codec.loads(data)
    driver = Driver(request["root"], request["path"], tuple(request["args"]))
    _answer(fds[0], driver.create, request["container_id"], request["bundle"],
            request["console"], request["pid_file"])


def _runc_error(stderr: str) -> str:
    """runc logs JSON or logfmt lines; keep the last message."""
    message = ""
    for line in stderr.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            record = json_codec.loads(line)
            message = record.get("msg", line) if isinstance(record, dict) else line
        except ValueError:
            key = 'msg="'
            if key in line:
                message = line.split(key, 1)[1].rsplit('"', 1)[0].replace('\\"', '"')
            else:
                message = line
    return message


def _take_pid(pid_file: str) -> int:
    """The pid a runtime wrote with --pid-file; the file is ours to remove."""
    with open(pid_file) as f:
        pid = int(f.read())
    os.unlink(pid_file)
    return pid
