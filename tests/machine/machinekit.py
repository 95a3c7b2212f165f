"""What the machine tests (and bench/machine.py) share: the `moor` binary, an isolated
machine store and docker config per module, a bare VM for the generic driver, and the
loopback port check."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

MOOR = os.path.join(os.path.dirname(sys.executable), "moor")
CACHE = os.environ.get("MOOR_MACHINE_CACHE", "/var/tmp/moorage-machine-cache")


class Env:
    def __init__(self, base: Path, name: str) -> None:
        self.storage = base / "storage"
        self.name = name
        self.vars = {**os.environ, "MOOR_MACHINE_STORAGE_PATH": str(self.storage),
                     "DOCKER_CONFIG": str(base / "docker-config"),
                     "MOOR_MACHINE_CACHE": CACHE}
        for var in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH",
                    "MOOR_HOST"):
            self.vars.pop(var, None)

    def run(self, *argv: str, input: bytes | None = None, timeout: float = 300,
            extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(argv, input=input, capture_output=True, timeout=timeout,
                              env={**self.vars, **(extra or {})}, check=False)
        return subprocess.CompletedProcess(done.args, done.returncode,
                                           done.stdout.decode(errors="replace"),
                                           done.stderr.decode(errors="replace"))

    def moor(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return self.run(MOOR, *args, **kwargs)  # type: ignore[arg-type]

    def ok(self, *argv: str, **kwargs: object) -> str:
        done = self.run(*argv, **kwargs)  # type: ignore[arg-type]
        assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
        return done.stdout

    def machine_dir(self, name: str | None = None) -> Path:
        return self.storage / "machines" / (name or self.name)

    def config(self) -> dict:
        return json.loads((self.machine_dir() / "config.json").read_text())

    def qemu_pid(self) -> int | None:
        try:
            pid = int((self.machine_dir() / "qemu.pid").read_text())
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError):
            return None
        return None if state == "Z" else pid

    def contexts(self) -> list[str]:
        return self.ok(MOOR, "context", "ls", "-q").split()


BARE_USER = "ops"
# A bare host: no moorage (the image's moord.service needs the seed's, and is disabled
# as well), and a user who is not root, with password-less sudo.
_BARE_SETUP = f"""systemctl disable --quiet moord.service
useradd --create-home --shell /bin/sh {BARE_USER}
install -d -m 700 -o {BARE_USER} -g {BARE_USER} /home/{BARE_USER}/.ssh
install -m 600 -o {BARE_USER} -g {BARE_USER} /root/.ssh/authorized_keys /home/{BARE_USER}/.ssh/
echo '{BARE_USER} ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/{BARE_USER}
"""


@dataclass
class Bare:
    ssh_port: int
    engine_port: int
    key: Path
    pid: int


def bare_vm(storage: Path) -> Iterator[Bare]:
    """A VM booted bare from the cached machine image (systemd, sshd; its seed carries
    no moorage, so no engine runs), reached over SSH on 127.0.0.1 as root or as
    BARE_USER."""
    from moorage.machine import certs, qemu, ssh, store
    from moorage.machine import image as images
    from moorage.machine.paths import machine_dir
    from moorage.machine.ports import free_port

    # The store's paths are read when a Machine is made: the variables need only last that long.
    with mock.patch.dict(os.environ, {"MOOR_MACHINE_STORAGE_PATH": str(storage),
                                      "MOOR_MACHINE_CACHE": CACHE}):
        image = images.ensure()
        os.makedirs(machine_dir("bare"), 0o700)
        engine_port = free_port()
        machine = store.new("bare", "qemu", {
            "CPU": 1, "Memory": 512, "IPAddress": "127.0.0.1", "Kernel": image.kernel,
            "Initrd": image.initrd, "SSHPort": free_port(), "EnginePort": engine_port,
            "GuestEnginePort": engine_port, "Accel": qemu.accel(image.kernel, print)})
        certs.machine_certs(machine.dir, "bare", ["127.0.0.1"])
    try:
        client_key = certs.ssh_keypair(machine.path("id_ed25519"))
        host_key = machine.path("ssh_host_ed25519_key")
        ssh.record_host_key(machine, certs.ssh_keypair(host_key))
        tree = Path(qemu.seed(machine, client_key, host_key, "bare"))
        shutil.rmtree(tree / "moorage")
        qemu.disks(machine, image.disk, images.ROOT_SIZE_MB, str(tree))
        qemu.launch(machine)
        pid = qemu.pid(machine)
        assert pid
        _wait_ssh(machine, ssh)
        ssh.run(machine, ["sh", "-ec", _BARE_SETUP])
        yield Bare(machine.ssh_port, engine_port, Path(machine.path("id_ed25519")), pid)
    finally:
        qemu.kill(machine)


def _wait_ssh(machine: object, ssh: object) -> None:
    import time

    from moorage.machine.errors import MachineError

    deadline = time.monotonic() + 120
    while True:
        try:
            ssh.run(machine, ["true"])
            return
        except MachineError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def free(port: int) -> bool:
    """Nothing listens on the port (connections in TIME_WAIT do not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
