"""Runtimes under test and the names tests share: the runtime suites import these."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The console script lives next to the interpreter running the tests, so the suite
# exercises the checkout it was started from.
MOOR_RUNTIME = os.environ.get(
    "MOOR_RUNTIME", str(Path(sys.executable).parent / "moor-runtime")
)
BINARIES: dict[str, str] = {
    "moor-runtime": MOOR_RUNTIME,
    "runc": shutil.which("runc") or "/usr/sbin/runc",
    "crun": shutil.which("crun") or "/usr/bin/crun",
}
CGROUP_ROOT = "/sys/fs/cgroup"


def new_id(prefix: str = "moor-test") -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


# --------------------------------------------------------------------------- runtimes


@dataclass
class Result:
    rc: int
    out: str
    err: str

    def __iter__(self) -> Iterator[Any]:
        # Lets callers unpack `rc, out, err = rt(...)`.
        return iter((self.rc, self.out, self.err))

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Runtime:
    """One OCI runtime binary with a private state directory (its --root)."""

    name: str
    binary: str
    root: str
    global_args: list[str] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)
    # A command the runtime runs under, such as `unshare --mount` for a throwaway
    # mount namespace the container may share.
    wrapper: list[str] = field(default_factory=list)

    def argv(self, *args: str) -> list[str]:
        return [*self.wrapper, self.binary, "--root", self.root, *self.global_args, *args]

    def __call__(
        self,
        *args: str,
        timeout: float = 60,
        input: str | None = None,
        pass_fds: Sequence[int] = (),
        stdin: int | None = None,
    ) -> Result:
        if args and args[0] in ("create", "run"):
            # Registered before the call so a runtime that dies half way through
            # creation still gets a `delete --force` at teardown.
            self.containers.append(args[-1])
        kw: dict[str, Any] = {}
        if input is not None:
            kw["input"] = input.encode()
        elif stdin is not None:
            kw["stdin"] = stdin
        else:
            kw["stdin"] = subprocess.DEVNULL
        # Files, not pipes: a detached container inherits the runtime's stdio and
        # would hold a pipe open, so waiting for EOF would hang.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            p = subprocess.run(
                self.argv(*args),
                stdout=out,
                stderr=err,
                timeout=timeout,
                pass_fds=tuple(pass_fds),
                **kw,
            )
            out.seek(0)
            err.seek(0)
            return Result(
                p.returncode,
                out.read().decode(errors="replace"),
                err.read().decode(errors="replace"),
            )

    def state(self, cid: str) -> dict[str, Any]:
        r = self("state", cid)
        assert r.rc == 0, f"{self.name} state {cid}: rc={r.rc} {r.err.strip()}"
        data: dict[str, Any] = json.loads(r.out)
        return data

    def cleanup(self) -> None:
        for cid in reversed(self.containers):
            try:
                subprocess.run(
                    self.argv("delete", "--force", cid),
                    capture_output=True,
                    timeout=30,
                )
            except subprocess.TimeoutExpired:
                pass
        self.containers.clear()


def available(name: str) -> bool:
    return os.access(BINARIES[name], os.X_OK)


BundleFactory = Callable[..., str]


# ----------------------------------------------------------- host snapshots (leak checks)


def mount_table() -> set[tuple[str, str, str]]:
    """(mount point, fstype, source) of every mount in our mount namespace."""
    found: set[tuple[str, str, str]] = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields = pre.split()
            fstype, source = post.split()[:2]
            found.add((fields[4], fstype, source))
    return found


def cgroup_dirs() -> set[str]:
    """Cgroup directories, in every hierarchy, whose name mentions moor or test."""
    found: set[str] = set()
    try:
        hierarchies = [os.path.join(CGROUP_ROOT, h) for h in os.listdir(CGROUP_ROOT)]
    except OSError:
        return found
    for h in hierarchies:
        if not os.path.isdir(h):
            continue
        for dirpath, dirnames, _ in os.walk(h):
            for d in dirnames:
                if "moor" in d or "test" in d:
                    found.add(os.path.join(dirpath, d))
    return found


def processes() -> dict[int, str]:
    """pid → command line of every user-space process (kernel threads have none)."""
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if cmd:
            found[int(entry)] = cmd
    return found


def proc_starttime(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def is_leaked_process(pid: int, ours: int) -> bool:
    """A process counts as ours if it descends from pytest or lives in another mount ns.

    Container processes are reparented to pid 1 when their runtime exits, so
    ancestry alone misses them; a foreign mount namespace gives them away.
    """
    if pid == ours:
        return False
    try:
        if os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink(f"/proc/{ours}/ns/mnt"):
            return True
    except OSError:
        return False
    p = pid
    for _ in range(64):
        try:
            with open(f"/proc/{p}/stat") as f:
                p = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        if p == ours:
            return True
        if p <= 1:
            return False
    return False
