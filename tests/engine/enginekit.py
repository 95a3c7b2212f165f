"""Starting and driving a real moord on a temporary socket and data-root."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from peers import run_docker, stop_process

MOORD = os.path.join(os.path.dirname(sys.executable), "moord")


@dataclass
class Daemon:
    """A running moord: its socket, data-root, and the process to stop."""

    socket: str
    data_root: str
    exec_root: str
    process: subprocess.Popen
    log_path: str

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def log(self) -> str:
        return Path(self.log_path).read_text(errors="replace")

    def docker(self, *args: str, input: str | bytes | None = None, timeout: float = 60,
               check: bool = False) -> subprocess.CompletedProcess:
        """Run the real docker CLI against this daemon (no config, no contexts)."""
        return run_docker(self.host, os.path.join(self.data_root, "..", "docker-config"), args,
                          input=input, timeout=timeout, check=check)


def start_daemon(base: str, *extra: str) -> Daemon:
    socket_path = os.path.join(base, "moord.sock")
    data_root = os.path.join(base, "data")
    exec_root = os.path.join(base, "exec")
    log_path = os.path.join(base, "moord.log")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [MOORD, "--data-root", data_root, "--exec-root", exec_root,
             "-H", f"unix://{socket_path}", "--config-file", os.devnull, *extra],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not os.path.exists(socket_path):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("moord did not start:\n" + Path(log_path).read_text())
        time.sleep(0.02)
    return Daemon(socket_path, data_root, exec_root, process, log_path)


def stop_daemon(daemon: Daemon) -> None:
    stop_process(daemon.process, timeout=20)
