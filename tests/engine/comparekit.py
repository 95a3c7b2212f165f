"""Comparing moord with a real dockerd: the same docker CLI command on both, outputs
masked of IDs and times."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from enginekit import Daemon, start_daemon, stop_daemon
from peers import Dockerd, start_dockerd, stop_dockerd

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

    def both(self, *args: str, input: bytes | None = None,
             timeout: float = 60) -> tuple[subprocess.CompletedProcess, ...]:
        return (self.moord.docker(*args, input=input, timeout=timeout),
                self.dockerd.docker(*args, input=input, timeout=timeout))

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
        for result in (self.moord.docker("inspect", name), self.dockerd.docker("inspect", name)):
            assert result.returncode == 0, result.stderr
            doc = json.loads(result.stdout)[0]
            found.append({f: field(doc, f) for f in fields})
        return found[0], found[1]


def field(doc: dict, path: str) -> object:
    for key in path.split("."):
        doc = doc.get(key) if isinstance(doc, dict) else None  # type: ignore[assignment]
    return doc


@contextmanager
def daemon_pair(prefix: str, image: str, tar: bytes,
                networking: bool = False) -> Iterator[Pair]:
    """moord and a reference dockerd, each on its own socket and data-root under one
    temporary folder, with `tar` imported as `image`; their containers go at the end.
    `networking`: dockerd with its bridge and iptables, in a network namespace of its own."""
    with tempfile.TemporaryDirectory(prefix=prefix) as base:
        root = Path(base)
        (root / "moord").mkdir()
        (root / "dockerd").mkdir()
        moord = start_daemon(str(root / "moord"))
        try:
            dockerd = start_dockerd(str(root / "dockerd"), networking)
            try:
                for daemon in (moord, dockerd):
                    daemon.docker("import", "-", image, input=tar, check=True)
                yield Pair(moord, dockerd, root)
            finally:
                dockerd.docker("rm", "-f", *dockerd.docker("ps", "-aq").stdout.decode().split())
                dockerd.docker("network", "prune", "-f")
                stop_dockerd(dockerd)
        finally:
            moord.docker("rm", "-f", *moord.docker("ps", "-aq").stdout.decode().split())
            moord.docker("network", "prune", "-f")
            stop_daemon(moord)
