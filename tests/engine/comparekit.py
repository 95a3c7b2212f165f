"""Comparing moord with a real dockerd: the same docker CLI command on both, outputs
masked of IDs and times."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import partial
from pathlib import Path
from typing import TypeVar

from enginekit import Daemon, start_daemon, stop_daemon
from peers import Dockerd, start_dockerd, stop_dockerd

# The two daemons are independent: whatever both are asked runs on both at once, which
# halves the wall time of a comparison (each side waits mostly on its own daemon).
_OTHERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pair")
_AHEAD = ThreadPoolExecutor(max_workers=8, thread_name_prefix="ahead")
T = TypeVar("T")


def concurrently(first: Callable[[], T], *others: Callable[[], T]) -> list[T]:
    """`first` in this thread and `others` in workers, at the same time; results in order."""
    futures = [_OTHERS.submit(call) for call in others]
    try:
        head = first()
    finally:
        wait(futures)  # none still running once this returns or raises
    return [head, *(future.result() for future in futures)]

_MASKS = (
    (re.compile(rb"sha256:[0-9a-f]{64}"), b"sha256:<ID>"),
    (re.compile(rb"\b[0-9a-f]{64}\b"), b"<ID>"),
    (re.compile(rb"\b[0-9a-f]{12}\b"), b"<SHORT>"),
    (re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"), b"<TIME>"),
    # The CLI's own logrus lines carry the local time.
    (re.compile(rb'time="[^"]*"'), b'time="<TIME>"'),
    # Ages in Status columns depend on when each daemon was asked, not on the daemon.
    (re.compile(rb"(Less than a second|About a minute|About an hour|\d+ (second|minute|hour)s?)"
                rb"( ago)?"), b"<AGE>\\3"),
)


def mask(data: bytes) -> str:
    for pattern, replacement in _MASKS:
        data = pattern.sub(replacement, data)
    return data.decode(errors="replace")


@dataclass
class Pair:
    moord: Daemon
    dockerd: Dockerd
    base: Path
    # dockerd's answers asked ahead (ask_ahead), by key, until a test takes them.
    ahead: dict[Hashable, Future] = dataclass_field(default_factory=dict)

    def both(self, *args: str, input: bytes | None = None,
             timeout: float = 60) -> tuple[subprocess.CompletedProcess, ...]:
        return tuple(self.each(lambda d: d.docker(*args, input=input, timeout=timeout),
                               key=("docker", args, input)))

    def each(self, call: Callable[[Daemon | Dockerd], T], key: Hashable = None) -> list[T]:
        """`call` on moord and on dockerd at the same time: [moord's, dockerd's]; dockerd's
        answer is the one asked ahead under `key`, if there is one."""
        if key in self.ahead:
            return [call(self.moord), self.ahead.pop(key).result()]
        return concurrently(lambda: call(self.moord), lambda: call(self.dockerd))

    def ask_ahead(self, call: Callable[[Dockerd], object], key: Hashable) -> None:
        """Ask dockerd now, in a thread of its own, what a test will ask both later under
        `key`: for answers that take dockerd long while the rest of the module goes on (it
        looks an unknown log or volume driver up as a plugin for 15 s before refusing)."""
        self.ahead[key] = _AHEAD.submit(call, self.dockerd)

    def ask_docker_ahead(self, *args: str) -> None:
        """ask_ahead for `both(*args)`."""
        self.ask_ahead(lambda d: d.docker(*args), ("docker", args, None))

    def same(self, *args: str, input: bytes | None = None, stderr_lines: int | None = None,
             compare_stderr: bool = True, compare_stdout: bool = True) -> int:
        """Run on both; assert the same exit code, stdout and stderr (its first lines)."""
        ours, theirs = self.both(*args, input=input)
        view = [(r.returncode, mask(r.stdout) if compare_stdout else "",
                 "\n".join(mask(r.stderr).splitlines()[:stderr_lines])
                 if compare_stderr else "") for r in (ours, theirs)]
        assert view[0] == view[1], f"docker {' '.join(args)}: moord {view[0]} dockerd {view[1]}"
        return ours.returncode

    def inspect(self, name: str, fields: list[str]) -> tuple[dict, dict]:
        found = []
        for result in self.both("inspect", name):
            assert result.returncode == 0, result.stderr
            doc = json.loads(result.stdout)[0]
            found.append({f: field(doc, f) for f in fields})
        return found[0], found[1]


def field(doc: dict, path: str) -> object:
    for key in path.split("."):
        doc = doc.get(key) if isinstance(doc, dict) else None  # type: ignore[assignment]
    return doc


@contextmanager
def daemon_pair(prefix: str, image: str, tar: bytes, networking: bool = False,
                dockerd_config: dict | None = None) -> Iterator[Pair]:
    """moord and a reference dockerd, each on its own socket and data-root under one
    temporary folder, with `tar` imported as `image`; their containers go at the end.
    `networking`: dockerd with its bridge and iptables, in a network namespace of its own;
    `dockerd_config`: its daemon.json settings."""
    with tempfile.TemporaryDirectory(prefix=prefix) as base:
        root = Path(base)
        running: list[Daemon | Dockerd] = []

        def up(start: Callable[[], Daemon | Dockerd]) -> Daemon | Dockerd:
            daemon = start()
            running.append(daemon)
            daemon.docker("import", "-", image, input=tar, check=True)
            return daemon

        (root / "moord").mkdir()
        (root / "dockerd").mkdir()
        try:
            moord, dockerd = concurrently(
                lambda: up(lambda: start_daemon(str(root / "moord"))),
                lambda: up(lambda: start_dockerd(str(root / "dockerd"), networking,
                                                dockerd_config)))
            assert isinstance(moord, Daemon) and isinstance(dockerd, Dockerd)
            yield Pair(moord, dockerd, root)
        finally:
            if running:
                concurrently(*(partial(_down, daemon) for daemon in running))


def _down(daemon: Daemon | Dockerd) -> None:
    """Remove the daemon's containers and networks, then stop it."""
    daemon.docker("rm", "-f", *daemon.docker("ps", "-aq").stdout.decode().split())
    daemon.docker("network", "prune", "-f")
    if isinstance(daemon, Daemon):
        stop_daemon(daemon)
    else:
        stop_dockerd(daemon)
