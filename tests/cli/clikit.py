"""What the CLI suites share: both command lines pointed at one daemon."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from peers import DOCKER_CLI

MOOR = os.path.join(os.path.dirname(sys.executable), "moor")


@dataclass
class Clis:
    """The two command lines, pointed at the same daemon (`engine`: "dockerd" or "moord")."""

    host: str
    config: str
    engine: str

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("DOCKER_HOST", "MOOR_HOST", "DOCKER_CONTEXT")}
        return {**env, "DOCKER_HOST": self.host, "DOCKER_CONFIG": self.config, **extra}

    def run(self, binary: str, *args: str, input: bytes | None = None,
            timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([binary, *args], env=self.env(**env), input=input,
                              capture_output=True, timeout=timeout)

    def moor(self, *args: str, **kw: object) -> subprocess.CompletedProcess:
        return self.run(MOOR, *args, **kw)  # type: ignore[arg-type]

    def docker(self, *args: str, **kw: object) -> subprocess.CompletedProcess:
        return self.run(DOCKER_CLI, *args, **kw)  # type: ignore[arg-type]

