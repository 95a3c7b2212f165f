"""Running `moor dashboard` against a test moord, the moor CLI beside it, and checks
through the Engine API (not through the page)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peers import stop_process
from registrykit import free_port

from moorage.client.api import Client
from moorage.client.endpoint import Endpoint

MOOR = os.path.join(os.path.dirname(sys.executable), "moor")
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).parent / "screenshots"


@dataclass
class Dashboard:
    url: str
    process: subprocess.Popen[bytes]
    log_path: str

    def log(self) -> str:
        return Path(self.log_path).read_text(errors="replace")


def start_dashboard(engine_host: str, base: str, *args: str, port: int | None = None,
                    scheme: str = "http", pythonpath: str | None = None) -> Dashboard:
    """`moor dashboard` through the CLI (which execs the server), ready when it answers;
    `pythonpath` runs another copy of the moorage package (a benchmark's baseline)."""
    port = port or free_port()
    log_path = os.path.join(base, f"dashboard-{port}.log")
    env = {**os.environ, "DOCKER_HOST": engine_host, "DOCKER_CONFIG": os.path.join(base, "cfg")}
    if pythonpath:  # and not started from the worktree, which `python -m` puts first
        env["PYTHONPATH"] = pythonpath
    listen = next((a for a in args if a.startswith("--listen=")), None)
    argv = [MOOR, "dashboard", *args] + ([] if listen else ["--listen", f"127.0.0.1:{port}"])
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   stdin=subprocess.DEVNULL, cwd=base if pythonpath else None)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                stop_process(process)
                raise RuntimeError("the dashboard did not start:\n" +
                                   Path(log_path).read_text()) from None
            time.sleep(0.05)
    return Dashboard(f"{scheme}://127.0.0.1:{port}", process, log_path)


def moor(engine_host: str, *args: str, input: bytes | None = None,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_HOST": engine_host}
    done = subprocess.run([MOOR, *args], env=env, input=input, capture_output=True,
                          timeout=60)
    result = subprocess.CompletedProcess(done.args, done.returncode,
                                         done.stdout.decode(errors="replace"),
                                         done.stderr.decode(errors="replace"))
    if check and done.returncode:
        raise AssertionError(f"moor {' '.join(args)}: {result.stderr}")
    return result


def api(engine_host: str) -> Client:
    return Client(Endpoint(engine_host))


def state(engine_host: str, container: str) -> dict[str, Any]:
    client = api(engine_host)
    try:
        return client.get(f"/containers/{container}/json")["State"]
    finally:
        client.close()


def wait_for(check: Any, timeout: float = 5.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class CuttableProxy:
    """A unix-socket relay to the engine that a test can cut and restore, to lose the
    engine without stopping it."""

    def __init__(self, path: str, target: str) -> None:
        self.path, self.target = path, target
        self._open: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.restore()

    @property
    def host(self) -> str:
        return f"unix://{self.path}"

    def restore(self) -> None:
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(self.path)
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._relay, args=(a, b), daemon=True).start()

    @staticmethod
    def _relay(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        assert self._listener is not None
        self._listener.close()
        os.unlink(self.path)
        for sock in self._open:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self._open.clear()
