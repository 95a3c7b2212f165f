"""What the compose tests drive: `moor compose` and docker-compose 1.29 against one engine,
and a network namespace for the reference dockerd."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from enginekit import Daemon
from peers import Dockerd

MOOR = os.path.join(os.path.dirname(sys.executable), "moor")
DOCKER_COMPOSE = "/usr/bin/docker-compose"


@dataclass
class ComposeEngine:
    name: str
    daemon: Daemon | Dockerd
    base: str

    @property
    def host(self) -> str:
        return self.daemon.host

    def moor(self, *args: str, cwd: str | None = None, input: str | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`moor args...` against this engine."""
        return subprocess.run([MOOR, "-H", self.host, *args], cwd=cwd, capture_output=True,
                              text=True, input=input, timeout=timeout, env=self.env())

    def compose(self, cwd: str, *args: str, input: str | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`moor compose` in `cwd`, against this engine."""
        return self.moor("compose", *args, cwd=cwd, input=input, timeout=timeout)

    def popen(self, cwd: str, *args: str, stdout: int, stderr: int | None = None
              ) -> subprocess.Popen[str]:
        """`moor compose` left running (logs -f, events, watch, attached up)."""
        return subprocess.Popen([MOOR, "-H", self.host, "compose", *args], cwd=cwd,
                                stdout=stdout, stderr=stderr, text=True, env=self.env())

    def docker_compose(self, cwd: str, *args: str,
                       timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Debian's docker-compose 1.29 against the same engine."""
        return subprocess.run([DOCKER_COMPOSE, "--ansi", "never", *args], cwd=cwd,
                              capture_output=True, text=True, timeout=timeout,
                              env={**self.env(), "DOCKER_HOST": self.host})

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items()
                if not k.startswith(("COMPOSE_", "DOCKER_", "MOOR_"))}
        return {**keep, "DOCKER_CONFIG": os.path.join(self.base, "docker-config")}

    def docker(self, *args: str, input: str | bytes | None = None,
               check: bool = False) -> subprocess.CompletedProcess[bytes]:
        return self.daemon.docker(*args, input=input, check=check)
