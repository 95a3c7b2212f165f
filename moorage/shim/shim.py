"""moor-shim: the supervisor of one container, forked by the zygote.

It is the init's parent (a child subreaper), owns its stdio, writes its log,
records its exit status to a file in the exec-root and serves the daemon on a
unix socket (wire.py), so the container outlives a daemon restart. It stays
single-threaded: one epoll loop, SIGCHLD through the wakeup fd. No peer can
stop that loop: every fd is non-blocking and every buffer bounded (stdio.py),
and each runtime operation runs in a short-lived child (driver.in_child).

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
from _signal import SIG_DFL, SIGCHLD, set_wakeup_fd
from _signal import signal as set_handler
from _socket import AF_UNIX, SOCK_STREAM
from _socket import socket as Socket
from select import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, epoll

from moorage import fdpass, json_codec, timefmt
from moorage.fsutil import atomic_write
from moorage.linux import libc
from moorage.protocol import stdcopy
from moorage.runtime.cgroups.manager import read_oom_kills
from moorage.shim.driver import AheadChild, Driver, RuntimeFailed, in_child
from moorage.shim.stdio import CHUNK, STALL_SECONDS, Conn, CriLog, JsonLog, Process
from moorage.shim.wire import (
    EXIT_STREAM,
    Attach,
    CreateOutcome,
    CreateResult,
    Exec,
    ExecState,
    ExecStatus,
    ExitRecord,
    Failure,
    Kill,
    KillExec,
    Message,
    Ok,
    Pause,
    ReopenLog,
    Resize,
    Resume,
    ShimConfig,
    ShimState,
    Start,
    Started,
    State,
    StreamOpened,
    Wait,
    decode_request,
)

# Output still buffered in pipes after the init's exit is drained for this long:
# processes outside the container's pid namespace may hold the pipes open.
_DRAIN_SECONDS = 2.0
# How long a shim whose create failed waits for the daemon to collect the error.
_FAILED_SECONDS = 30.0


def _exit_code(status: int) -> int:
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _set_size(master: int, height: int, width: int) -> None:
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


class Shim:
    def __init__(self, config: ShimConfig, server: Socket,
                 ahead: AheadChild | None = None) -> None:
        self.config = config
        self.driver = Driver(config.runtime_root, config.runtime_path, config.runtime_args)
        self.ahead = ahead  # runs the create, when the zygote forked this shim ahead
        self.poller = epoll()
        # What each polled fd is for and the events asked of it; _poll_set brings the
        # epoll set in line with the state after every round.
        self.polled: dict[int, tuple[int, tuple]] = {}
        # Its log is opened while the runtime creates it (create).
        self.init = Process("", config.tty, config.stdin_once, None, self._forget)
        self.execs: dict[str, Process] = {}
        self.conns: list[Conn] = []
        self.waiters: list[Conn] = []
        self.started = False
        self.created: Message = Failure("shim: the container is being created")
        self.created_answered = False
        self.oom_file = ""                  # counts the cgroup's OOM kills (Driver.create)
        self.start_fifo = ""                # a start that skips the state (Driver.release)
        self.start_time = ""
        self.signal_fd: int | None = None
        self.drain_deadline: float | None = None
        self.server = server  # bound and listening since the zygote: the daemon may connect now
        server.setblocking(False)

    def _forget(self, fd: int) -> None:
        """Stop polling `fd`; called before it is closed, so its number may be reused."""
        if self.polled.pop(fd, None) is not None:
            try:
                self.poller.unregister(fd)
            except OSError:
                pass

    # ------------------------------------------------------------------ setup

    def create(self) -> int:
        """Create the container with its stdio; return the init's pid."""
        created = self._spawn(self.init, self.config.open_stdin, self._create_in_child)
        self.init.pid = created["pid"]
        self.oom_file = created["oom_file"]
        self.start_fifo = created["fifo"]
        self.start_time = created["start_time"]
        if self.init.master is not None and all(self.config.console_size):
            _set_size(self.init.master, *self.config.console_size)
        return self.init.pid

    def _open_log(self) -> None:
        """The init's log: a file created on the data-root's disk (~0.5 ms, measured),
        opened while the runtime's child works on the other CPU."""
        config = self.config
        if config.log_path:
            log_class = CriLog if config.log_format == "cri" else JsonLog
            self.init.log = log_class(config.log_path, config.log_rotation)

    def _create_in_child(self, console_socket: str | None, pid_file: str) -> dict:
        """The runtime's create, in the child forked ahead or else in a new one, the
        init's log opened meanwhile."""
        ahead, self.ahead = self.ahead, None
        if ahead is not None:
            try:
                return ahead.create(self.driver, self.config.container_id, self.config.bundle,
                                    console_socket, pid_file, meanwhile=self._open_log)
            except OSError:  # gone before it got the request
                pass
        return in_child(self.driver.create, self.config.container_id, self.config.bundle,
                        console_socket, pid_file, meanwhile=self._open_log)

    def _spawn(self, process: Process, with_stdin: bool, launch):  # type: ignore[no-untyped-def]
        """Run `launch(console_socket, pid_file)` (which runs the runtime in a child, see
        driver.in_child) with the process's stdio on fds 0-2; what it returns."""
        # sun_path is 108 bytes: a short tag keeps the console socket's path within it.
        base = f"{self.config.socket_path}.{(process.key or 'init')[:8]}"
        pid_file = f"{base}.pid"
        if process.tty:
            console_path = f"{base}.tty"
            console = Socket(AF_UNIX, SOCK_STREAM)
            try:
                os.unlink(console_path)
            except FileNotFoundError:
                pass
            console.bind(console_path)
            console.listen(1)
            try:
                result = launch(console_path, pid_file)
                process.master = _receive_fd(Socket(fileno=console._accept()[0]))
            finally:
                console.close()
                os.unlink(console_path)
            os.set_blocking(process.master, False)
            process.outputs[process.master] = stdcopy.STDOUT
            return result
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        in_r, in_w = os.pipe() if with_stdin else (os.open(os.devnull, os.O_RDONLY), None)
        saved = [os.dup(fd) for fd in (0, 1, 2)]
        try:
            for fd, target in ((in_r, 0), (out_w, 1), (err_w, 2)):
                os.dup2(fd, target)
            result = launch(None, pid_file)
        except BaseException:
            for fd in (out_r, err_r, in_w):
                if fd is not None:
                    os.close(fd)
            raise
        finally:
            for fd, target in zip(saved, (0, 1, 2), strict=True):
                os.dup2(fd, target)
                os.close(fd)
            for fd in (in_r, out_w, err_w):
                os.close(fd)
        if in_w is not None:
            # The container's stdin pipe: a container that does not read it must
            # not stop the shim (stdin waits in Process.stdin_pending).
            os.set_blocking(in_w, False)
        process.stdin_fd = in_w
        for fd, stream in ((out_r, stdcopy.STDOUT), (err_r, stdcopy.STDERR)):
            os.set_blocking(fd, False)
            process.outputs[fd] = stream
        return result

    # ------------------------------------------------------------------ loop

    def serve(self) -> None:
        rfd, wfd = os.pipe()
        os.set_blocking(rfd, False)
        os.set_blocking(wfd, False)
        set_wakeup_fd(wfd)
        set_handler(SIGCHLD, lambda _s, _f: None)
        self.signal_fd = rfd
        self._reap()  # a child that exited before the handler was installed
        while self.init.exit is None:
            self._round()
        self._finish_serving()

    def serve_failed(self) -> None:
        """After a failed create: answer `created` (within _FAILED_SECONDS), then end."""
        deadline = time.monotonic() + _FAILED_SECONDS
        while not self.created_answered and time.monotonic() < deadline:
            self._round(deadline=deadline)
        self._finish_serving()

    def _finish_serving(self) -> None:
        """No new connections; what is queued (exit frames, waiters' replies) goes out,
        to each client for at most STALL_SECONDS."""
        if self.server.fileno() >= 0:
            self._forget(self.server.fileno())
            self.server.close()
        try:
            os.unlink(self.config.socket_path)
        except FileNotFoundError:
            pass
        deadline = time.monotonic() + STALL_SECONDS
        while any(c.pending for c in self.conns) and time.monotonic() < deadline:
            self._round(accepting=False, deadline=deadline)

    def _round(self, accepting: bool = True, deadline: float | None = None) -> None:
        self._poll_set(accepting)
        for fd, events in self.poller.poll(self._timeout(deadline)):
            entry = self.polled.get(fd)
            if entry is None:  # forgotten by an earlier event of this round
                continue
            handler = entry[1]
            kind = handler[0]
            if kind == "signal":
                try:
                    os.read(fd, 512)
                except BlockingIOError:
                    pass
                self._reap()
            elif kind == "accept":
                self._accept()
            elif kind == "output":
                process = handler[1]
                if events & EPOLLOUT:
                    process.flush_stdin()
                if events & ~EPOLLOUT:
                    self._read_output(process, fd)
            elif kind == "stdin":
                handler[1].flush_stdin()
            else:
                self._conn_event(handler[1], events)
        now = time.monotonic()
        for conn in self.conns:
            if conn.stalled(now):  # a client that stopped reading: drop it, not the container
                conn.close()
        self._check_finished()

    def _timeout(self, deadline: float | None) -> float:
        deadlines = [c.full_since + STALL_SECONDS for c in self.conns if c.full_since is not None]
        if deadline is not None:
            deadlines.append(deadline)
        if self.drain_deadline is not None:
            deadlines.append(self.drain_deadline)
        if not deadlines:
            return -1.0
        return max(0.0, min(deadlines) - time.monotonic()) + 0.001

    def _poll_set(self, accepting: bool) -> None:
        """What to poll, from the state: outputs unless a client is behind, stdin while
        queued, connections' input unless their process's stdin is full, their output
        while queued."""
        wanted: dict[int, tuple[int, tuple]] = {}
        if self.signal_fd is not None:
            wanted[self.signal_fd] = (EPOLLIN, ("signal",))
        if accepting:
            wanted[self.server.fileno()] = (EPOLLIN, ("accept",))
        for process in (self.init, *self.execs.values()):
            handler = ("output", process)
            paused = process.output_paused()
            for fd in process.outputs:
                events = 0 if paused else EPOLLIN
                if fd == process.master and process.stdin_pending:
                    events |= EPOLLOUT
                wanted[fd] = (events, handler)
            if process.stdin_fd is not None and process.stdin_pending:
                wanted[process.stdin_fd] = (EPOLLOUT, ("stdin", process))
        self.conns = [c for c in self.conns if not c.closed]
        for conn in self.conns:
            events = EPOLLOUT if conn.pending else 0
            if conn.reading and not (conn.process and conn.process.stdin_full()):
                events |= EPOLLIN
            wanted[conn.fileno()] = (events, ("conn", conn))
        for fd in [fd for fd in self.polled if fd not in wanted]:
            self._forget(fd)
        for fd, entry in wanted.items():
            current = self.polled.get(fd)
            if current == entry:
                continue
            if current is None:
                self.poller.register(fd, entry[0])
            else:
                self.poller.modify(fd, entry[0])
            self.polled[fd] = entry

    def _accept(self) -> None:
        try:
            fd, _ = self.server._accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        # What socket.socket.accept does, without the socket module.
        self.conns.append(Conn(Socket(fileno=fd), self._forget))

    def _conn_event(self, conn: Conn, events: int) -> None:
        if events & EPOLLOUT:
            conn.flush()
        if conn.closed or not events & ~EPOLLOUT:
            return
        if not conn.reading:
            if events & (EPOLLHUP | EPOLLERR):
                conn.close()
            return
        try:
            data = conn.sock.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        process = conn.process
        if process is not None:
            if data:
                if conn.stdin:
                    process.write_stdin(data)
                return
            # Half-closed by the daemon: stdin's EOF; output still flows.
            conn.reading = False
            process.stdin_done(conn)
            return
        if not data:
            conn.close()
            return
        conn.request += data
        if b"\n" in conn.request:
            line, _, rest = conn.request.partition(b"\n")
            conn.request = b""
            self._request(conn, line, rest)

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
            data = os.read(fd, CHUNK)
        except BlockingIOError:
            return
        except OSError:  # EIO from a pty master once every slave is closed
            data = b""
        if data:
            process.output(fd, data)
            return
        self._forget(fd)
        del process.outputs[fd]
        os.close(fd)
        if fd == process.master:
            process.master = None
            process.stdin_pending.clear()

    def _check_finished(self) -> None:
        for process in self.execs.values():
            if process.exit is None and process.status is not None and not process.outputs:
                process.finish(ExitRecord(_exit_code(process.status)))
        init = self.init
        if init.status is None or init.exit is not None:
            return
        if init.outputs and time.monotonic() < (self.drain_deadline or 0):
            return
        for fd in list(init.outputs):
            self._forget(fd)
            os.close(fd)
            if fd == init.master:
                init.master = None
        init.outputs.clear()
        # The exit is reported first and the runtime's delete (the cgroup, its state)
        # runs after: a start or a removal of the container waits for the shim to be
        # gone (daemon/containers/exits.py, shim_gone), and the shim unlinks its socket
        # only after the delete. The OOM-kill count must be read before the delete.
        oom = bool(self.oom_file) and read_oom_kills(self.oom_file) > 0
        record = ExitRecord(_exit_code(init.status), oom, timefmt.now())
        for process in self.execs.values():
            if process.exit is None:
                process.finish(ExitRecord(137))
        init.finish(record)
        for waiter in self.waiters:
            waiter.reply(record)
        # For a daemon that was not waiting (restarted, or connecting from now on): written
        # after the waiters have the record, which is a `run --rm`'s path (the file's
        # create cost ~0.5 ms on a disk-backed exec-root, measured), and before the socket
        # closes. No fsync: the exec-root is /run, with the processes it describes, which
        # a reboot ends anyway; a crash of the shim keeps the file.
        atomic_write(self.config.exit_file, json_codec.dumps(record.to_dict()).encode(),
                     sync=False)
        # No requests during the delete: a daemon that connects now is refused at once and
        # reads the exit file, instead of waiting in the backlog for the delete.
        self._forget(self.server.fileno())
        self.server.close()
        # In the shim itself, not in a child as every other runtime operation: the shim
        # ends after it, so the pages it dirties no longer matter, and a start or removal
        # waiting for the shim to be gone saves a fork and a wait (~1 ms, measured).
        try:
            self.driver.delete(self.config.container_id)
        except Exception:  # the exit record matters more than the cleanup
            pass

    # ------------------------------------------------------------------ requests

    def _request(self, conn: Conn, line: bytes, rest: bytes) -> None:
        try:
            request = decode_request(line)
        except ValueError as err:
            conn.reply(Failure(f"shim: {err}"))
            return
        try:
            self._handle(conn, request, rest)
        except RuntimeFailed as err:
            conn.reply(Failure(str(err)))
        except Exception as err:  # one bad request must not end the shim
            conn.reply(Failure(f"shim: {type(err).__name__}: {err}"))

    def _handle(self, conn: Conn, request: Message, rest: bytes) -> None:
        cid = self.config.container_id
        if isinstance(request, (Attach, Exec)):
            process = self.init if isinstance(request, Attach) else self._exec(request)
            conn.reply(StreamOpened(process.pid), last=False)
            if process.exit is not None:
                conn.send(stdcopy.frame(EXIT_STREAM,
                                        json_codec.dumps(process.exit.to_dict()).encode()))
                conn.reading = False
                conn.closing = True
                conn.flush()
                return
            process.attach(conn, bool(request.stdout), bool(request.stderr),
                           bool(request.stdin))
            if rest and conn.stdin:
                process.write_stdin(rest)
            return
        conn.reading = False
        if isinstance(request, CreateOutcome):
            conn.reply(self.created)
            self.created_answered = True
            return
        if isinstance(request, Wait):
            if self.init.exit is not None:
                conn.reply(self.init.exit)
            else:
                self.waiters.append(conn)
            return
        reply: Message = Ok()
        if isinstance(request, Start):
            if self.start_fifo and not self.started:
                self.driver.release(self.start_fifo, self.init.pid, self.start_time)
            else:
                in_child(self.driver.start, cid)
            self.started = True
            reply = Started(self.init.pid)
        elif isinstance(request, Kill):
            in_child(self.driver.kill, cid, int(request.signal), bool(request.all))
        elif isinstance(request, KillExec):
            process = self.execs.get(request.exec_id)
            if process is not None and process.exit is None and process.pid > 0:
                os.kill(process.pid, int(request.signal))  # not reaped: still ours
        elif isinstance(request, (Pause, Resume)):
            in_child(self.driver.pause, cid, isinstance(request, Pause))
        elif isinstance(request, Resize):
            # An exec already forgotten (its exit raced the resize) is no one's size to
            # set, least of all the container's own terminal.
            target = self.execs.get(request.exec_id) if request.exec_id else self.init
            if target is not None and target.master is not None:
                _set_size(target.master, int(request.h), int(request.w))
        elif isinstance(request, ExecStatus):
            process = self.execs.get(request.exec_id)
            reply = ExecState(process.pid if process else 0,
                              process.exit.exit_code if process and process.exit else None,
                              bool(process and process.exit is None))
        elif isinstance(request, State):
            reply = ShimState(self.init.pid, self.started)
        elif isinstance(request, ReopenLog):
            if self.init.log is None:
                reply = Failure("the container has no log file")
            else:
                self.init.log.reopen()
        conn.reply(reply)

    def _exec(self, request: Exec) -> Process:
        key = str(request.exec_id)
        tty = bool(request.process.get("terminal"))
        process = Process(key, tty, True, None, self._forget)
        self.execs[key] = process
        try:
            process.pid = self._spawn(process, bool(request.stdin), lambda console, pid_file:
                                      in_child(self.driver.exec, self.config.container_id,
                                               request.process, console, pid_file))
        except BaseException:
            del self.execs[key]
            raise
        height, width = request.console_size or (0, 0)
        if process.master is not None and height and width:
            _set_size(process.master, height, width)
        return process


def _receive_fd(conn: Socket) -> int:
    """The pty master a runtime sends on the console socket (SCM_RIGHTS, as runc does)."""
    try:
        _, fds = fdpass.receive(conn, 4096, 1)
    finally:
        conn.close()
    if fds:
        return fds[0]
    raise OSError("console socket: no file descriptor received")


def listen(socket_path: str) -> Socket:
    """The shim's socket, bound before the fork: the daemon connects as soon as the
    zygote answers, and its requests wait in the backlog while the container is created."""
    server = Socket(AF_UNIX, SOCK_STREAM)
    try:
        os.unlink(socket_path)
    except FileNotFoundError:
        pass
    server.bind(socket_path)
    os.chmod(socket_path, 0o600)
    server.listen(64)
    return server


def run(config: ShimConfig, server: Socket, ahead: AheadChild | None = None) -> None:
    """The shim's life: create the container, then serve until the exit.

    The create's outcome is the answer to the daemon's `created` request; after a
    failed create the shim serves only that answer (for a while) and ends.
    """
    set_handler(SIGCHLD, SIG_DFL)  # the zygote ignores it, and ignoring it reaps for us
    libc.prctl(libc.PR_SET_CHILD_SUBREAPER, 1)
    shim = Shim(config, server, ahead)
    try:
        shim.created = CreateResult(os.getpid(), shim.create())
    except Exception as err:  # reported to the daemon as the create error
        shim.created = Failure(str(err) if isinstance(err, RuntimeFailed)
                               else f"shim: {type(err).__name__}: {err}")
        try:  # the runtime may have created it before the shim failed (its terminal)
            in_child(shim.driver.delete, config.container_id)
        except RuntimeFailed:
            pass
        shim.serve_failed()
        return
    shim.serve()
