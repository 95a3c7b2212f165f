"""What the machine tests share: the `moor` binary, an isolated machine store and
docker config per module, and the loopback port check."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

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


def free(port: int) -> bool:
    """Nothing listens on the port (connections in TIME_WAIT do not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
