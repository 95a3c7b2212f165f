"""SSH into a machine with OpenSSH's client: the machine's own key, its known_hosts
(the host key the machine was given at create, or the one a generic host showed at
its first contact, checked strictly from then on), no agent."""

from __future__ import annotations

import subprocess

from moorage.machine.errors import MachineError
from moorage.machine.store import Machine


def options(machine: Machine, first_contact: bool = False) -> list[str]:
    """first_contact: a generic host's key is not known before create meets it; it is
    recorded then (accept-new) and checked strictly ever after."""
    import os

    key = str(machine.driver["SSHKeyPath"])
    if not os.path.exists(key):
        raise MachineError(f"SSH key {key} does not exist")
    checking = "accept-new" if first_contact else "yes"
    return ["-i", key, "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={machine.path('known_hosts')}",
            "-o", f"StrictHostKeyChecking={checking}",
            "-o", f"HostKeyAlias=moor-machine-{machine.name}",
            "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20"]


def command(machine: Machine, argv: list[str], tty: bool = False,
            first_contact: bool = False) -> list[str]:
    return ["ssh", *options(machine, first_contact), "-p", str(machine.ssh_port),
            *(["-t"] if tty else []),
            f"{machine.driver['SSHUser']}@{machine.ip}", "--", *argv]


def run(machine: Machine, argv: list[str], stdin: bytes | None = None,
        first_contact: bool = False) -> str:
    import shlex

    done = subprocess.run(command(machine, [shlex.join(argv)], first_contact=first_contact),
                          input=stdin, capture_output=True, timeout=300, check=False)
    if done.returncode != 0:
        shown = " ".join(argv)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."  # a script: its head
        raise MachineError(f"ssh: {shown}: exit {done.returncode}: "
                           f"{done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode(errors="replace")


def run_as_root(machine: Machine, script: str, stdin: bytes | None = None,
                first_contact: bool = False) -> str:
    """A shell script as root: through `sudo -n` for another user (docker-machine's
    generic driver asks the same: password-less sudo)."""
    argv = ["sh", "-c", script]
    if machine.driver["SSHUser"] != "root":
        argv = ["sudo", "-n", *argv]
    return run(machine, argv, stdin, first_contact)


def scp_command(machine_of: object, source: str, target: str, recursive: bool) -> list[str]:
    """`NAME:path` on either side names a machine; the other side is local."""
    args: list[str] = []
    machine: Machine | None = None
    for spec in (source, target):
        name, colon, path = spec.partition(":")
        if colon and "/" not in name:
            machine = machine_of(name)  # type: ignore[operator]
            assert machine is not None
            args.append(f"{machine.driver['SSHUser']}@{machine.ip}:{path}")
        else:
            args.append(spec)
    if machine is None:
        raise MachineError("scp needs a machine on one side: NAME:PATH")
    return ["scp", *options(machine), "-P", str(machine.ssh_port), *(["-r"] if recursive else []),
            *args]
