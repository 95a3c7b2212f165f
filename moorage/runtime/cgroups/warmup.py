"""Overlapping the kernel's wait on the first cgroup migration with other work.

Every write to cgroup.procs takes the global threadgroup rwsem for writing; the
first writer after a quiet spell waits out a whole RCU grace period (5-20 ms
measured here), later writers within the next grace period do not. Moving
ourselves into the cgroup we are already in is a no-op that pays that wait: done
on a thread as soon as the runtime knows it will migrate a process, the wait
overlaps with config parsing and cgroup creation instead of adding to them.
"""

from __future__ import annotations

import _thread
import os

from moorage.runtime.cgroups.paths import HYBRID_ROOT, ROOT, detect_mode


def _own_procs_file() -> str | None:
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    mode = detect_mode()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "" and mode != "legacy":
            base = ROOT if mode == "unified" else HYBRID_ROOT
            return f"{base}{path.rstrip('/')}/cgroup.procs"
        if controllers == "pids":
            return f"/sys/fs/cgroup/pids{path.rstrip('/')}/cgroup.procs"
    return None


def _rejoin(procs_file: str) -> None:
    try:
        fd = os.open(procs_file, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, b"0")  # "0" means the writing process itself.
        finally:
            os.close(fd)
    except OSError:
        pass  # Only an optimisation: the real migration reports real errors.


# The zygote starts the migration before every fork: its cgroup stays the same,
# and reading /proc/self/cgroup each time wrote pages (~90 KiB measured) that every
# shim forked before then kept as private copies.
_procs_file: list[str | None] = []


def start() -> None:
    """Begin the no-op migration on a thread (C-level, nothing to import)."""
    if not _procs_file:
        _procs_file.append(_own_procs_file())
    procs_file = _procs_file[0]
    if procs_file is not None:
        _thread.start_new_thread(_rejoin, (procs_file,))
