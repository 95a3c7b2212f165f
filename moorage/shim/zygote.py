"""The zygote: exec'd once by the daemon, forks a shim per container.

It imports the runtime up front and stays single-threaded with no event loop,
so its children may unshare and setns (DESIGN.md, Processes) and no container
start pays for a Python interpreter. (The warm-up below runs on a short-lived
C-level thread that only writes one file; a fork copies just the forking thread.)
Requests arrive on stdin, one ShimConfig JSON per line; each answer is one
JSON line on stdout, right after the fork: {"pid"} of the shim, or {"error"}.
The zygote binds the shim's socket before it forks, so the daemon connects at
once and asks the shim itself for the create's outcome (`created`): creates
run concurrently, and a hung one holds only its own shim.

Each shim is forked into its own session and outlives the zygote and the
daemon. It is forked once, not twice: the first child of a double fork copies
pages the shim then inherits privately (~200 KiB a shim, measured); the
zygote ignores SIGCHLD so that the kernel reaps its shims.

Before forking, the zygote does what every shim would otherwise repeat: it
compiles the bundle's seccomp profile (the runtime caches the program, so the
shim inherits it ready).

While no request waits, the zygote forks the next shim ahead (a spare): a request
then hands it its configuration and its bound socket instead of forking, which takes
the fork and the new process's first page faults (~1 ms) off the container's start.
A spare forked before a profile was compiled lacks it, and is let go (it ends when
its channel closes, as it does when the zygote ends). The spare forks the child its
create runs in ahead as well (driver.AheadChild), which meanwhile warms up on the spec
of the last container, the zygote's copy of it: its first page faults (~130 in the
parse alone, ~3.6 µs each here) then leave the start's path too.
"""

from __future__ import annotations

import gc
import os
import sys
from _signal import SIG_IGN, SIGCHLD
from _signal import signal as set_handler
from _socket import AF_UNIX, SOCK_SEQPACKET, socketpair
from _socket import socket as Socket
from select import select

# Loaded before the first fork so that every shim starts warm.
import moorage.runtime.container
import moorage.runtime.execute  # noqa: F401
from moorage import fdpass, json_codec
from moorage.linux import libc
from moorage.runtime import config as config_mod
from moorage.runtime.seccomp import compile_filter
from moorage.shim import shim
from moorage.shim.driver import AheadChild
from moorage.shim.wire import Failure, Forked, Message, ShimConfig

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see runtime/init.py)
if TYPE_CHECKING:
    from collections.abc import Callable

# The profiles compiled so far, by _profile_key.
_compiled_profiles: set[int] = set()
# Seconds without a request after which the zygote forks a spare: not at once, where
# the fork would take a CPU from the start it just served.
_SPARE_AFTER = 0.05


def _precompile_seccomp(spec: bytes) -> bool:
    """Compile the bundle's profile into the runtime's cache, which every later fork
    inherits: Docker's default profile costs ~21 ms to build and export (measured
    here), which each container start paid before.

    Parsed once per profile, not per container: every page the zygote writes after a
    fork stays behind in the shims forked before as a private copy, and parsing the
    spec wrote ~300 KiB of them a spawn (measured). Whether it compiled one now."""
    try:
        key = _profile_key(spec)
        if key is None or key in _compiled_profiles:
            return False
        seccomp = config_mod.parse(spec, "config.json").get("linux", {}).get("seccomp")
        if seccomp and seccomp.get("defaultAction"):
            compile_filter(seccomp)
        _compiled_profiles.add(key)
        return True
    except Exception:  # the shim's create meets the same error and reports it
        return False


def _profile_key(spec: bytes) -> int | None:
    """A hash of the spec's "seccomp" object, found in its text without a parse; None
    without one. Braces inside its strings may end it early or late: the key then
    differs or repeats, which costs a compile in the shim or one skipped here, never a
    wrong filter (the runtime keys its cache by profile)."""
    start = spec.find(b'"seccomp"')
    end = spec.find(b"{", start)
    if start < 0 or end < 0:
        return None
    depth = 1
    while depth:
        opening, closing = spec.find(b"{", end + 1), spec.find(b"}", end + 1)
        if closing < 0:
            return None
        if 0 <= opening < closing:
            depth, end = depth + 1, opening
        else:
            depth, end = depth - 1, closing
    with memoryview(spec) as view, view[start:end + 1] as profile:
        return hash(profile)


class Spare:
    """A shim forked ahead: it waits on its end of a channel for its configuration and
    its bound socket, then lives as any shim. It forks the child its create will run in
    ahead too (driver.AheadChild), which warms up on `last_spec`."""

    def __init__(self, last_spec: bytes) -> None:
        self.channel, theirs = socketpair(AF_UNIX, SOCK_SEQPACKET)

        def live() -> None:
            self.channel.close()
            try:
                ahead: AheadChild | None = AheadChild(theirs, last_spec)
            except OSError:  # no fork now: the create forks its own child
                ahead = None
            container = _await_container(theirs)
            if container is not None:
                shim.run(*container, ahead=ahead)

        self.pid = _fork_shim(live)
        theirs.close()

    def hand(self, config: ShimConfig, server: Socket) -> Forked:
        try:
            fdpass.send(self.channel, json_codec.dumps(config.to_dict()).encode(),
                        (server.fileno(),))
        finally:
            self.channel.close()
        return Forked(self.pid)

    def let_go(self) -> None:
        self.channel.close()


def _await_container(channel: Socket) -> tuple[ShimConfig, Socket] | None:
    """The configuration and bound socket the zygote hands over; None when it lets
    this spare go (the channel closes)."""
    try:
        data, fds = fdpass.receive(channel, 1 << 20, 1)
    finally:
        channel.close()
    if not fds:
        return None
    return ShimConfig.from_dict(json_codec.loads(data)), Socket(fileno=fds[0])


def _read_spec(bundle: str) -> bytes:
    """The bundle's config.json, read once a request: for its seccomp profile, and for
    the next spare's warm-up. Nothing when it cannot be read (the shim's create reports
    why)."""
    try:
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            return f.read()
    except OSError:
        return b""


def _fork_shim(live: Callable[[], None]) -> int:
    """Fork a shim, in its own session with no stdio of the zygote's, that runs `live`
    and ends; its pid."""
    # The shims' collector then never visits the zygote's objects: a visit writes
    # the object's header and so copies its page into the shim. Small at start
    # (PSS 2753 -> 2691 KiB a shim, measured); it keeps a long-lived shim's
    # full collections from copying every page the zygote's objects live on.
    gc.freeze()
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.close(null)
            live()
        finally:
            os._exit(0)
    return pid


def spawn(config: ShimConfig, spec: bytes, spare: Spare | None) -> Forked:
    """`spec`: the bundle's config.json, for moor-runtime's containers."""
    fresh_profile = bool(spec) and _precompile_seccomp(spec)
    server = shim.listen(config.socket_path)
    try:
        if spare is not None and not fresh_profile:
            return spare.hand(config, server)
        if spare is not None:
            spare.let_go()
        return Forked(_fork_shim(lambda: shim.run(config, server)))
    finally:
        server.close()


def main() -> None:
    set_handler(SIGCHLD, SIG_IGN)
    # The first call through ctypes builds the function's wrapper: made here, it is
    # shared by every shim instead of copied into each.
    libc.prctl(libc.PR_SET_CHILD_SUBREAPER, 0)
    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    spare: Spare | None = None
    last_spec = b""
    while True:
        # The daemon sends a request only once the last is answered: nothing is left
        # in stdin's buffer when select() looks at the pipe.
        if spare is None and not select([stdin], [], [], _SPARE_AFTER)[0]:
            try:
                spare = Spare(last_spec)
            except OSError:  # no fork now: the next request forks its own
                spare = None
        line = stdin.readline()
        if not line:
            break
        reply: Message
        try:
            config = ShimConfig.from_dict(json_codec.loads(line))
            spec = b"" if config.runtime_path else _read_spec(config.bundle)
            reply = spawn(config, spec, spare)
            # The runc runtimes' specs warm nothing up: the last one of moor-runtime stays.
            last_spec = spec or last_spec
        except Exception as err:  # the daemon gets every failure as a reply
            reply = Failure(f"zygote: {type(err).__name__}: {err}")
        spare = None  # handed over or let go by spawn
        stdout.write(reply.encode())
        stdout.flush()


if __name__ == "__main__":
    main()
