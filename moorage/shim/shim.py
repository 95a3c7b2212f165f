"""moor-shim: the supervisor of one container, forked by the zygote.

It is the init's parent (a child subreaper), owns its stdio, writes its log,
records its exit status to a file in the exec-root and serves the daemon on a
unix socket (wire.py), so the container outlives a daemon restart. It stays
single-threaded: one epoll loop, SIGCHLD through the wakeup fd.

The zygote imports this module, so every shim maps what it imports. The C
modules beneath socket, selectors and signal stand in for them: those wrap
their constants in IntEnums, and enum with its imports cost ~1.6 MB of RSS
in the zygote and in each shim.
"""

from __future__ import annotations

import fcntl
import os
import struct
import termios
import time
from _signal import SIGCHLD, set_wakeup_fd
from _signal import signal as set_handler
from _socket import AF_UNIX, MSG_NOSIGNAL, SOCK_STREAM
from _socket import socket as Socket
from select import EPOLLIN, epoll

from moorage import json_codec
from moorage.linux import libc
from moorage.protocol import stdcopy
from moorage.shim.driver import Driver, RuntimeFailed
from moorage.shim.stdio import Client, JsonLog, Process, now_rfc3339nano
from moorage.shim.wire import EXIT_STREAM, ShimConfig, decode, encode

# Output still buffered in pipes after the init's exit is drained for this long:
# processes outside the container's pid namespace may hold the pipes open.
_DRAIN_SECONDS = 2.0


def _exit_code(status: int) -> int:
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _set_size(master: int, height: int, width: int) -> None:
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


class Shim:
    def __init__(self, config: ShimConfig) -> None:
        self.config = config
        self.driver = Driver(config.runtime_root, config.runtime_path, config.runtime_args)
        self.poller = epoll()
        # What each registered fd is for: "signal", "accept", ("output", process),
        # ("request", conn, buffer) or ("stdin", conn, process, client).
        self.handlers: dict[int, tuple] = {}
        self.init = Process("", config.tty, config.stdin_once,
                            JsonLog(config.log_path) if config.log_path else None, self._close)
        self.execs: dict[str, Process] = {}
        self.waiters: list[Socket] = []
        self.started = False
        self.drain_deadline: float | None = None
        self.server = Socket(AF_UNIX, SOCK_STREAM)

    def _register(self, fd: int, handler: tuple) -> None:
        self.poller.register(fd, EPOLLIN)
        self.handlers[fd] = handler

    def _unregister(self, fd: int) -> None:
        if self.handlers.pop(fd, None) is not None:
            self.poller.unregister(fd)

    # ------------------------------------------------------------------ setup

    def create(self) -> int:
        """Create the container with its stdio; return the init's pid."""
        self.init.pid = self._spawn(self.init, self.config.open_stdin, lambda console, pid_file:
                                    self.driver.create(self.config.container_id,
                                                       self.config.bundle, console, pid_file))
        if self.init.master is not None and all(self.config.console_size):
            _set_size(self.init.master, *self.config.console_size)
        return self.init.pid

    def _spawn(self, process: Process, with_stdin: bool, call) -> int:  # type: ignore[no-untyped-def]
        """Run `call(console_socket, pid_file)` with the process's stdio on fds 0-2."""
        # sun_path is 108 bytes: a short tag keeps the console socket's path within it.
        base = f"{self.config.socket_path}.{(process.key or 'init')[:8]}"
        pid_file = f"{base}.pid"
        if process.tty:
            # The runtime's console connection imports socket in this process
            # anyway: only the shims of terminal containers pay for it.
            import socket

            from moorage.runtime.console import receive_master

            console_path = f"{base}.tty"
            console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                os.unlink(console_path)
            except FileNotFoundError:
                pass
            console.bind(console_path)
            console.listen(1)
            try:
                pid = call(console_path, pid_file)
                conn, _ = console.accept()
                with conn:
                    process.master = receive_master(conn)
            finally:
                console.close()
                os.unlink(console_path)
            os.set_blocking(process.master, False)
            process.outputs[process.master] = stdcopy.STDOUT
            self._register(process.master, ("output", process))
            return pid
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        in_r, in_w = os.pipe() if with_stdin else (os.open(os.devnull, os.O_RDONLY), None)
        saved = [os.dup(fd) for fd in (0, 1, 2)]
        try:
            for fd, target in ((in_r, 0), (out_w, 1), (err_w, 2)):
                os.dup2(fd, target)
            pid = call(None, pid_file)
        except BaseException:
            for fd in (out_r, in_w):
                if fd is not None:
                    os.close(fd)
            raise
        finally:
            for fd, target in zip(saved, (0, 1, 2), strict=True):
                os.dup2(fd, target)
                os.close(fd)
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        process.stdin_fd = in_w
        for fd, stream in ((out_r, stdcopy.STDOUT), (err_r, stdcopy.STDERR)):
            os.set_blocking(fd, False)
            process.outputs[fd] = stream
            self._register(fd, ("output", process))
        return pid

    def listen(self) -> None:
        try:
            os.unlink(self.config.socket_path)
        except FileNotFoundError:
            pass
        self.server.bind(self.config.socket_path)
        os.chmod(self.config.socket_path, 0o600)
        self.server.listen(64)
        self._register(self.server.fileno(), ("accept",))

    # ------------------------------------------------------------------ loop

    def serve(self) -> None:
        rfd, wfd = os.pipe()
        os.set_blocking(rfd, False)
        os.set_blocking(wfd, False)
        set_wakeup_fd(wfd)
        set_handler(SIGCHLD, lambda _s, _f: None)
        self._register(rfd, ("signal",))
        self._reap()  # a child that exited before the handler was installed
        while self.init.exit is None:
            timeout = -1.0
            if self.drain_deadline is not None:
                timeout = max(0.0, self.drain_deadline - time.monotonic())
            for fd, _ in self.poller.poll(timeout):
                handler = self.handlers.get(fd)
                if handler is None:  # unregistered by an earlier event of this round
                    continue
                kind = handler[0]
                if kind == "signal":
                    try:
                        os.read(rfd, 512)
                    except BlockingIOError:
                        pass
                    self._reap()
                elif kind == "accept":
                    # What socket.socket.accept does, without the socket module.
                    conn = Socket(fileno=self.server._accept()[0])
                    self._register(conn.fileno(), ("request", conn, [b""]))
                elif kind == "output":
                    self._read_output(handler[1], fd)
                elif kind == "request":
                    self._read_request(handler[1], handler[2])
                else:
                    self._read_stdin(handler[1], handler[2], handler[3])
            self._check_finished()
        self.server.close()
        try:
            os.unlink(self.config.socket_path)
        except FileNotFoundError:
            pass

    def _close(self, sock: Socket) -> None:
        if sock.fileno() >= 0:
            self._unregister(sock.fileno())
        sock.close()

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for process in (self.init, *self.execs.values()):
                if process.pid == pid and process.status is None:
                    process.status = status
                    if process is self.init:
                        self.drain_deadline = time.monotonic() + _DRAIN_SECONDS

    def _read_output(self, process: Process, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO from a pty master once every slave is closed
            data = b""
        if data:
            process.output(fd, data)
            return
        self._unregister(fd)
        del process.outputs[fd]
        if fd != process.master:
            os.close(fd)
        else:
            os.close(fd)
            process.master = None

    def _check_finished(self) -> None:
        for process in self.execs.values():
            if process.exit is None and process.status is not None and not process.outputs:
                process.finish({"exit_code": _exit_code(process.status)})
        init = self.init
        if init.status is None:
            return
        if init.outputs and time.monotonic() < (self.drain_deadline or 0):
            return
        for fd in list(init.outputs):
            self._unregister(fd)
            os.close(fd)
            if fd == init.master:
                init.master = None
        init.outputs.clear()
        oom = self.driver.cgroup_oom_kills(self.config.container_id) > 0
        try:
            self.driver.delete(self.config.container_id)
        except Exception:  # the exit record matters more than the cleanup
            pass
        record = {"exit_code": _exit_code(init.status), "oom_killed": oom,
                  "finished_at": now_rfc3339nano(), "error": ""}
        write_atomic(self.config.exit_file, json_codec.dumps(record).encode())
        for process in self.execs.values():
            if process.exit is None:
                process.finish({"exit_code": 137})
        init.finish(record)
        for waiter in self.waiters:
            self._reply(waiter, record)
            self._close(waiter)

    # ------------------------------------------------------------------ requests

    def _read_request(self, conn: Socket, buffer: list[bytes]) -> None:
        try:
            data = conn.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return
        buffer[0] += data
        if b"\n" not in buffer[0]:
            return
        line, _, rest = buffer[0].partition(b"\n")
        try:
            request = decode(line)
            self._handle(conn, request, rest)
        except RuntimeFailed as err:
            self._reply(conn, {"error": str(err)})
            self._close(conn)
        except Exception as err:  # one bad request must not end the shim
            self._reply(conn, {"error": f"shim: {type(err).__name__}: {err}"})
            self._close(conn)

    def _reply(self, conn: Socket, message: dict) -> None:
        try:
            conn.sendall(encode(message), MSG_NOSIGNAL)
        except OSError:
            pass

    def _handle(self, conn: Socket, request: dict, rest: bytes) -> None:
        op = request.get("op")
        cid = self.config.container_id
        if op == "attach" or op == "exec":
            process = self.init if op == "attach" else self._exec(request)
            if process.exit is not None:
                self._reply(conn, {"ok": True, "pid": process.pid})
                Client(conn, False, False, False).send(
                    EXIT_STREAM, json_codec.dumps(process.exit).encode())
                self._close(conn)
                return
            client = Client(conn, bool(request.get("stdout")), bool(request.get("stderr")),
                            bool(request.get("stdin")))
            self._reply(conn, {"ok": True, "pid": process.pid})
            process.clients.append(client)
            self.handlers[conn.fileno()] = ("stdin", conn, process, client)
            if rest:
                self._read_stdin(conn, process, client, rest)
            return
        if op == "wait":
            if self.init.exit is not None:
                self._reply(conn, self.init.exit)
                self._close(conn)
            else:
                self._unregister(conn.fileno())
                self.waiters.append(conn)
            return
        if op == "start":
            self.driver.start(cid)
            self.started = True
            reply: dict = {"ok": True, "pid": self.init.pid}
        elif op == "kill":
            self.driver.kill(cid, int(request["signal"]), bool(request.get("all")))
            reply = {"ok": True}
        elif op in ("pause", "resume"):
            self.driver.pause(cid, op == "pause")
            reply = {"ok": True}
        elif op == "resize":
            target = self.execs.get(request.get("exec_id") or "") or self.init
            if target.master is not None:
                _set_size(target.master, int(request["h"]), int(request["w"]))
            reply = {"ok": True}
        elif op == "exec_status":
            process = self.execs.get(request["exec_id"])
            reply = {"pid": process.pid if process else 0,
                     "exit_code": (process.exit or {}).get("exit_code") if process else None,
                     "running": bool(process and process.exit is None)}
        elif op == "state":
            reply = {"pid": self.init.pid, "started": self.started}
        else:
            reply = {"error": f"shim: unknown request {op!r}"}
        self._reply(conn, reply)
        self._close(conn)

    def _exec(self, request: dict) -> Process:
        key = str(request["exec_id"])
        tty = bool(request["process"].get("terminal"))
        process = Process(key, tty, True, None, self._close)
        self.execs[key] = process
        try:
            process.pid = self._spawn(process, bool(request.get("stdin")), lambda console, pid_file:
                                      self.driver.exec(self.config.container_id,
                                                       request["process"], console, pid_file))
        except BaseException:
            del self.execs[key]
            raise
        height, width = request.get("console_size") or (0, 0)
        if process.master is not None and height and width:
            _set_size(process.master, height, width)
        return process

    def _read_stdin(self, conn: Socket, process: Process, client: Client,
                    data: bytes | None = None) -> None:
        if data is None:
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            if not data:
                # Half-closed by the daemon: stdin's EOF; output still flows.
                process.stdin_done(client)
                self._unregister(conn.fileno())
                return
        if client.stdin:
            process.write_stdin(data)


def run(config: ShimConfig, status_fd: int) -> None:
    """The shim's life: create the container, report to the zygote, serve until the exit."""
    libc.prctl(libc.PR_SET_CHILD_SUBREAPER, 1)
    shim = Shim(config)
    try:
        shim.listen()
        pid = shim.create()
    except Exception as err:  # reported to the daemon as the create error
        os.write(status_fd, encode({"error": str(err) if isinstance(err, RuntimeFailed)
                                    else f"shim: {type(err).__name__}: {err}"}))
        os.close(status_fd)
        try:
            os.unlink(config.socket_path)
        except FileNotFoundError:
            pass
        return
    os.write(status_fd, encode({"pid": os.getpid(), "init_pid": pid}))
    os.close(status_fd)
    shim.serve()
