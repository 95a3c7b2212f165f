"""SSH into a machine with asyncssh, in-process: the machine's own key only (no agent,
no ~/.ssh), its known_hosts in the store (the host key the machine was given at
create, or the one a generic host showed at its first contact, checked strictly from
then on), commands, interactive sessions with a PTY, and scp both ways.

asyncssh is imported here only, inside the functions: it costs ~0.2 s, which no
other command pays.
"""

from __future__ import annotations

import os

from moorage.machine.errors import MachineError
from moorage.machine.store import Machine

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    import asyncssh

CONNECT_TIMEOUT = 20
COMMAND_TIMEOUT = 300
CONNECT_FAILED = 255  # OpenSSH's exit status when it cannot connect


class ConnectError(MachineError):
    """No session: refused, timed out, key refused or host key not the known one."""


def _alias(machine: Machine) -> str:
    """known_hosts names the machine, not its address: a forwarded port may change."""
    return f"moor-machine-{machine.name}"


def record_host_key(machine: Machine, public_key: str) -> None:
    with open(machine.path("known_hosts"), "w") as f:
        f.write(f"{_alias(machine)} {public_key.strip()}\n")


def _known(machine: Machine) -> bool:
    try:
        return os.path.getsize(machine.path("known_hosts")) > 0
    except OSError:
        return False


def load_key(path: str, step: str | None = None) -> asyncssh.SSHKey:
    """A private key moor machine can use: no passphrase (it asks for none)."""
    import asyncssh

    try:
        return asyncssh.read_private_key(path)
    except (asyncssh.KeyImportError, OSError) as err:
        raise MachineError(f"SSH key {path}: {err}", step) from None


async def _connect(machine: Machine, first_contact: bool = False,
                   user: str | None = None) -> asyncssh.SSHClientConnection:
    """first_contact: a generic host's key is not known before create meets it; it is
    recorded then (OpenSSH's accept-new) and checked strictly ever after."""
    import asyncssh

    key = str(machine.driver["SSHKeyPath"])
    if not os.path.exists(key):
        raise MachineError(f"SSH key {key} does not exist")
    client_key = load_key(key)
    accept_new = first_contact and not _known(machine)
    user = user or str(machine.driver["SSHUser"])
    where = f"connect to host {machine.ip} port {machine.ssh_port}"
    try:
        conn = await asyncssh.connect(
            machine.ip, machine.ssh_port, username=user, config=[], client_keys=[client_key],
            agent_path=None, password_auth=False, kbdint_auth=False, gss_host=None,
            known_hosts=None if accept_new else machine.path("known_hosts"),
            host_key_alias=_alias(machine), x509_trusted_certs=None,
            connect_timeout=CONNECT_TIMEOUT)
    except asyncssh.HostKeyNotVerifiable:
        raise ConnectError(
            f'Host key verification failed for machine "{machine.name}": the host key '
            f"{machine.ip} port {machine.ssh_port} offers is not the one in "
            f"{machine.path('known_hosts')} (the host was replaced, or another answers "
            "on its address)") from None
    except asyncssh.PermissionDenied:
        raise ConnectError(f"{user}@{machine.ip}: Permission denied (publickey).") from None
    except asyncssh.Error as err:
        raise ConnectError(f"ssh: {where}: {err.reason}") from None
    except TimeoutError:
        raise ConnectError(f"ssh: {where}: Connection timed out") from None
    except OSError as err:
        reason = os.strerror(err.errno) if err.errno else str(err)
        raise ConnectError(f"ssh: {where}: {reason}") from None
    if accept_new:
        host_key = conn.get_server_host_key()
        assert host_key is not None
        record_host_key(machine, host_key.export_public_key().decode())
    return conn


def _shown(argv: list[str]) -> str:
    shown = " ".join(argv)
    return shown if len(shown) <= 60 else shown[:57] + "..."  # a script: its head


def run(machine: Machine, argv: list[str], stdin: bytes | None = None,
        first_contact: bool = False) -> str:
    """argv on the machine, its stdout back; a failure (or COMMAND_TIMEOUT) raises
    with its stderr."""
    import asyncio
    import shlex

    async def session() -> tuple[int | None, bytes, bytes]:
        async with await _connect(machine, first_contact) as conn:
            done = await conn.run(shlex.join(argv), input=stdin, encoding=None, check=False)
            return done.exit_status, bytes(done.stdout or b""), bytes(done.stderr or b"")

    try:
        status, out, err = asyncio.run(asyncio.wait_for(session(), COMMAND_TIMEOUT))
    except TimeoutError:
        raise MachineError(f"ssh: {_shown(argv)}: no answer within {COMMAND_TIMEOUT}s") \
            from None
    if status != 0:
        raise MachineError(f"ssh: {_shown(argv)}: exit {status}: "
                           f"{err.decode(errors='replace').strip()}")
    return out.decode(errors="replace")


def run_as_root(machine: Machine, script: str, stdin: bytes | None = None,
                first_contact: bool = False) -> str:
    """A shell script as root: through `sudo -n` for another user (docker-machine's
    generic driver asks the same: password-less sudo)."""
    argv = ["sh", "-c", script]
    if machine.driver["SSHUser"] != "root":
        argv = ["sudo", "-n", *argv]
    return run(machine, argv, stdin, first_contact)


def session(machine: Machine, argv: list[str]) -> int:
    """`moor machine ssh`: argv (joined by spaces, as ssh does) or, without one, a login
    shell; on a terminal without argv a PTY (the local terminal raw until the end, its
    size followed). stdin, stdout, stderr and the exit status pass through."""
    import asyncio

    pty = not argv and os.isatty(0)
    saved = None
    if pty:
        import termios

        saved = termios.tcgetattr(0)
    try:
        return asyncio.run(_session(machine, " ".join(argv) or None, pty))
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)


async def _session(machine: Machine, command: str | None, pty: bool) -> int:
    import asyncio
    import signal

    async with await _connect(machine) as conn:
        size = os.get_terminal_size(0) if pty else None
        process = await conn.create_process(
            command, encoding=None, term_type=os.environ.get("TERM", "xterm") if pty else None,
            term_size=(size.columns, size.lines) if size else None)
        loop = asyncio.get_running_loop()
        if pty:
            import termios
            import tty

            tty.setraw(0, termios.TCSADRAIN)  # as OpenSSH: what was typed ahead stays
            loop.add_signal_handler(signal.SIGWINCH, lambda: process.change_terminal_size(
                *os.get_terminal_size(0)))
        feeding = asyncio.ensure_future(_feed(process))
        try:
            await asyncio.gather(_drain(process.stdout, 1), _drain(process.stderr, 2))
            await process.wait_closed()
        finally:
            feeding.cancel()
            if pty:
                loop.remove_signal_handler(signal.SIGWINCH)
        status = process.exit_status
        return status if status is not None and status >= 0 else CONNECT_FAILED


async def _drain(stream: asyncssh.SSHReader[bytes], fd: int) -> None:
    while data := await stream.read(65536):
        while data:
            data = data[os.write(fd, data):]


async def _feed(process: asyncssh.SSHClientProcess[bytes]) -> None:
    """The local stdin to the remote's, then EOF. A terminal or pipe is read when it has
    data; a file or /dev/null (which epoll refuses) is read straight through. Ends
    quietly when the remote stops reading."""
    import asyncio

    import asyncssh

    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[bytes] = asyncio.Queue()

    def ready() -> None:
        data = _read_stdin()
        if not data:
            loop.remove_reader(0)
        chunks.put_nowait(data)

    try:
        try:
            loop.add_reader(0, ready)
        except OSError:  # EPERM: a file or /dev/null; EBADF: no stdin, read as empty
            while data := _read_stdin():
                process.stdin.write(data)
                await process.stdin.drain()
        else:
            try:
                while data := await chunks.get():
                    process.stdin.write(data)
                    await process.stdin.drain()
            finally:
                loop.remove_reader(0)
        process.stdin.write_eof()
    except (OSError, asyncssh.Error):
        pass


def _read_stdin() -> bytes:
    try:
        return os.read(0, 65536)
    except OSError:
        return b""


def copy(machine_of: Callable[[str], Machine], source: str, target: str,
         recursive: bool) -> None:
    """`moor machine scp`: `[user@]NAME:path` on either side (or both) names a machine,
    anything else is local; asyncssh's scp runs `scp -f`/`scp -t` on the machine."""
    import asyncio

    ends: list[tuple[Machine, str | None, str] | str] = []
    for spec in (source, target):
        head, colon, path = spec.partition(":")
        if colon and "/" not in head:
            user, _, name = head.rpartition("@")
            ends.append((machine_of(name), user or None, path or "."))
        else:
            ends.append(spec)
    if all(isinstance(end, str) for end in ends):
        raise MachineError("scp needs a machine on one side: NAME:PATH")
    asyncio.run(_copy(ends, recursive))


async def _copy(ends: list[tuple[Machine, str | None, str] | str], recursive: bool) -> None:
    from pathlib import PurePath

    import asyncssh

    conns: list[asyncssh.SSHClientConnection] = []
    paths: list[object] = []
    try:
        for end in ends:
            if isinstance(end, str):
                # a PurePath: asyncssh reads a str with a colon as host:path and connects
                paths.append(PurePath(end))
                continue
            machine, user, path = end
            conns.append(await _connect(machine, user=user))
            paths.append((conns[-1], path))
        await asyncssh.scp(paths[0], paths[1], recurse=recursive)  # type: ignore[arg-type]
    except asyncssh.SFTPError as err:  # the remote scp's own words start with "scp: "
        reason = err.reason if err.reason.startswith("scp: ") else f"scp: {err.reason}"
        raise MachineError(reason) from None
    except OSError as err:
        raise MachineError(f"scp: {err.filename or ''}: {err.strerror}") from None
    finally:
        for conn in conns:
            conn.close()
