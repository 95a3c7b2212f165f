"""SSH into a machine with OpenSSH's client: the machine's own key, its known_hosts
(the host key the machine was given at create, checked strictly), no agent."""

from __future__ import annotations

import subprocess

from moorage.machine.errors import MachineError
from moorage.machine.store import Machine


def options(machine: Machine) -> list[str]:
    import os

    key = machine.path("id_ed25519")
    if not os.path.exists(key):
        raise MachineError(f"SSH key {key} does not exist")
    return ["-i", machine.path("id_ed25519"), "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={machine.path('known_hosts')}",
            "-o", "StrictHostKeyChecking=yes", "-o", f"HostKeyAlias=moor-machine-{machine.name}",
            "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20"]


def command(machine: Machine, argv: list[str], tty: bool = False) -> list[str]:
    return ["ssh", *options(machine), "-p", str(machine.ssh_port), *(["-t"] if tty else []),
            f"{machine.driver['SSHUser']}@{machine.ip}", "--", *argv]


def run(machine: Machine, argv: list[str], stdin: bytes | None = None) -> str:
    import shlex

    done = subprocess.run(command(machine, [shlex.join(argv)]), input=stdin,
                          capture_output=True, timeout=120, check=False)
    if done.returncode != 0:
        raise MachineError(f"ssh: {' '.join(argv)}: exit {done.returncode}: "
                           f"{done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode(errors="replace")


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
