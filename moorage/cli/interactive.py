"""Attached streams: run without -d, start -a, attach, exec.

A hijacked connection carries the container's output (multiplexed frames
without a TTY, raw bytes with one) and our stdin. With a TTY the local terminal
goes to raw mode for the duration and is restored on every exit path; SIGWINCH
becomes POST …/resize; ctrl-p ctrl-q detaches (checked here, so it works
against any daemon).
"""

from __future__ import annotations

import _thread
import os
import sys

from moorage import json_codec, signals
from moorage.cli.flags import BOOL, LIST, STR, Spec, flag
from moorage.cli.session import CommandError
from moorage.client.api import Client, demux
from moorage.client.errors import APIError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import _socket
    from collections.abc import Callable, Iterator
    from typing import Any

    from moorage.cli.flags import Options
    from moorage.cli.session import Session
    from moorage.client.http import Response

DEFAULT_DETACH = "ctrl-p,ctrl-q"


class Detached(Exception):
    """The user typed the detach keys."""


def detach_sequence(keys: str | None) -> bytes:
    """"ctrl-p,ctrl-q" → b"\\x10\\x11" (docker's term.ToBytes)."""
    out = bytearray()
    for key in (keys or DEFAULT_DETACH).split(","):
        key = key.strip().lower()
        if key.startswith("ctrl-") and len(key) == 6:
            out.append(ord(key[5]) & 0x1F)
        elif len(key) == 1:
            out.append(ord(key))
        else:
            raise CommandError(f"Unknown character: '{key}'", 125)
    return bytes(out)


class RawTerminal:
    """Puts a terminal in raw mode; `restore` is idempotent and runs at exit too."""

    def __init__(self, fd: int) -> None:
        import termios
        import tty

        self.fd = fd
        self.saved = termios.tcgetattr(fd)
        tty.setraw(fd)

    def restore(self) -> None:
        import termios

        if self.saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
            self.saved = None


def _resizer(client: Client, path: str) -> Callable[..., None]:
    def resize(*_: Any) -> None:
        try:
            cols, rows = os.get_terminal_size(sys.stdout.fileno())
            client.post(path, {"h": rows, "w": cols})
        except (OSError, APIError):
            pass  # the container may be gone; docker ignores these too
    return resize


def _stdin_pump(sock: _socket.socket, detach: bytes, on_detach: list[bool]) -> None:
    """Copy stdin to the container until EOF or the detach keys."""
    matched = 0
    try:
        while data := os.read(0, 4096):
            if detach:
                for i, byte in enumerate(data):
                    matched = matched + 1 if byte == detach[matched] else (
                        1 if byte == detach[0] else 0)
                    if matched == len(detach):
                        sock.sendall(data[:i + 1 - len(detach)])
                        on_detach.append(True)
                        sock.shutdown(2)
                        return
            sock.sendall(data)
        sock.shutdown(1)  # half-close: the container sees EOF on its stdin
    except OSError:
        pass


def _output(sock: _socket.socket, buf: bytes, tty: bool) -> None:
    def chunks() -> Iterator[bytes]:
        if buf:
            yield buf
        while data := sock.recv(65536):
            yield data

    out, err = sys.stdout.buffer, sys.stderr.buffer
    if tty:
        for data in chunks():
            out.write(data)
            out.flush()
        return
    for fd, payload in demux(chunks()):
        stream = err if fd == 2 else out
        stream.write(payload)
        stream.flush()


def stream(session: Session, container: str, *, stdin: bool, tty: bool,
           detach_keys: str | None, start: Callable[[], None] | None = None,
           resize_path: str | None = None) -> bool:
    """Attach, optionally start, pump until the output ends; True if detached."""
    client = session.client
    params = {"stream": 1, "stdout": 1, "stderr": 1, "stdin": 1 if stdin else None}
    sock, buf = client.hijack("POST", f"/containers/{container}/attach", params)
    return pump(session, sock, buf, stdin=stdin, tty=tty, detach_keys=detach_keys,
                start=start, resize_path=resize_path or f"/containers/{container}/resize")


def pump(session: Session, sock: _socket.socket, buf: bytes, *, stdin: bool, tty: bool,
         detach_keys: str | None, start: Callable[[], None] | None,
         resize_path: str) -> bool:
    raw: RawTerminal | None = None
    detached: list[bool] = []
    old_winch = None
    try:
        if tty and stdin and os.isatty(0):
            raw = RawTerminal(0)
        if start is not None:
            start()
        if tty and os.isatty(1):
            resize = _resizer(session.client, resize_path)
            resize()
            old_winch = signals.signal(signals.SIGWINCH, resize)
        if stdin:
            keys = detach_sequence(detach_keys) if tty or detach_keys else b""
            # A bare thread: `threading` costs ~5 ms to import, and this one
            # needs no join; it dies with the process like a daemon thread.
            _thread.start_new_thread(_stdin_pump, (sock, keys, detached))
        _output(sock, buf, tty)
    except OSError:
        if not detached:
            raise
    finally:
        if old_winch is not None:
            signals.signal(signals.SIGWINCH, old_winch)
        if raw is not None:
            raw.restore()
        sock.close()
    return bool(detached)


def _proxy_signals(client: Client, container: str) -> None:
    """--sig-proxy: what we receive, the container gets (except the ones a tty handles)."""
    def forward(signum: int, _frame: Any) -> None:
        try:
            client.post(f"/containers/{container}/kill", {"signal": str(signum)})
        except (OSError, APIError):
            pass
    for sig in (signals.SIGINT, signals.SIGTERM, signals.SIGHUP, signals.SIGQUIT,
                signals.SIGUSR1, signals.SIGUSR2):
        signals.signal(sig, forward)


def run_attached(session: Session, container: str, opts: Options) -> int:
    """`run` without -d: attach, wait for the exit, start, stream, exit with its code."""
    client = session.client
    # The wait is a long poll on its own connection, registered before the start so
    # that a container that exits at once (and is auto-removed) is not missed.
    waiter = client.clone()  # no second /_ping: the version is negotiated
    condition = "removed" if opts.rm else "next-exit"
    # Sent now, its answer read only before the start: the wait's and the attach's
    # round trips overlap.
    wait_registered = waiter.submit("POST", f"/containers/{container}/wait",
                                    {"condition": condition})
    waits: list[Response] = []

    def start() -> None:
        waits.append(wait_registered())
        try:
            client.post(f"/containers/{container}/start")
        except APIError as err:
            from moorage.cli.start_errors import start_error  # only on the failing path

            raise start_error(err) from None

    if opts.sig_proxy and not opts.tty:
        _proxy_signals(client.clone(), container)
    if stream(session, container, stdin=opts.interactive, tty=opts.tty,
              detach_keys=opts.detach_keys, start=start):
        return 0
    try:
        # The first line is the whole answer (as the docker CLI's JSON decoder, no waiting
        # for the chunked body's end).
        result = json_codec.loads(next(waits[0].iter_lines(), b"{}"))
    except (OSError, ValueError):
        return 125
    finally:
        waiter.close()
    if (result.get("Error") or {}).get("Message"):
        sys.stderr.write(f"moor: {result['Error']['Message']}\n")
    return int(result.get("StatusCode", 125))


def attach(session: Session, opts: Options, args: list[str]) -> int:
    container = session.client.get(f"/containers/{args[0]}/json")
    if not container["State"]["Running"]:
        raise CommandError("You cannot attach to a stopped container, start it first")
    tty = bool(container["Config"]["Tty"])
    stdin = not opts.no_stdin and bool(container["Config"]["OpenStdin"])
    if stream(session, container["Id"], stdin=stdin, tty=tty, detach_keys=opts.detach_keys):
        return 0
    state = session.client.get(f"/containers/{container['Id']}/json")["State"]
    return int(state.get("ExitCode", 0))


def exec_(session: Session, opts: Options, args: list[str]) -> int:
    from moorage.cli.container_flags import env_list

    client = session.client
    body = {"AttachStdin": opts.interactive, "AttachStdout": not opts.detach,
            "AttachStderr": not opts.detach, "Tty": opts.tty, "Cmd": args[1:],
            "Env": env_list(opts.env_file, opts.env), "WorkingDir": opts.workdir or "",
            "User": opts.user or "", "Privileged": opts.privileged,
            "DetachKeys": opts.detach_keys or ""}
    exec_id = client.post(f"/containers/{args[0]}/exec", body=body)["Id"]
    if opts.detach:
        client.post(f"/exec/{exec_id}/start", body={"Detach": True, "Tty": opts.tty})
        return 0
    sock, buf = client.hijack("POST", f"/exec/{exec_id}/start",
                              body={"Detach": False, "Tty": opts.tty})
    if pump(session, sock, buf, stdin=opts.interactive, tty=opts.tty,
            detach_keys=opts.detach_keys, start=None, resize_path=f"/exec/{exec_id}/resize"):
        return 0
    result = client.get(f"/exec/{exec_id}/json")
    code = result.get("ExitCode")
    return 126 if code is None else int(code)


SPECS = {
    "attach": Spec("[OPTIONS] CONTAINER", attach, (
        flag("detach-keys", STR, "Override the key sequence for detaching a container"),
        flag("no-stdin", BOOL, "Do not attach STDIN"),
        flag("sig-proxy", BOOL, "Proxy all received signals to the process", True)),
        min_args=1, max_args=1),
    "exec": Spec("[OPTIONS] CONTAINER COMMAND [ARG...]", exec_, (
        flag("d|detach", BOOL, "Detached mode: run command in the background"),
        flag("detach-keys", STR, "Override the key sequence for detaching a container"),
        flag("e|env", LIST, "Set environment variables"),
        flag("env-file", LIST, "Read in a file of environment variables"),
        flag("i|interactive", BOOL, "Keep STDIN open even if not attached"),
        flag("privileged", BOOL, "Give extended privileges to the command"),
        flag("t|tty", BOOL, "Allocate a pseudo-TTY"),
        flag("u|user", STR, "Username or UID (format: \"<name|uid>[:<group|gid>]\")"),
        flag("w|workdir", STR, "Working directory inside the container")),
        min_args=2, interspersed=False),
}
