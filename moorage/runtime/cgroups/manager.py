"""What the v1 and v2 managers share: directories, membership, signalling, removal."""

from __future__ import annotations

import errno
import os

from moorage import signals
from moorage.errors import MoorError, SystemFailure
from moorage.linux import libc
from moorage.runtime.cgroups import fs

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see fs.py)
if TYPE_CHECKING:
    from typing import Any

# paths[CREATED] lists, one a line, the topmost directory create() made in each
# hierarchy: destroy() removes up to there and never a level that existed before.
CREATED = "created"


class CgroupManager:
    """A container's cgroup in every hierarchy it uses.

    `paths` maps a subsystem ("memory", "cpu", "name=systemd"; "" for the cgroup2
    tree) to the container's directory, plus the CREATED record. It is plain JSON:
    the runtime keeps it in state.json and reopens it with load_manager().
    """

    def __init__(self, paths: dict[str, str]) -> None:
        self.paths = paths

    def _dirs(self) -> list[str]:
        """Each directory once: co-mounted subsystems share one."""
        return list(dict.fromkeys(v for k, v in self.paths.items() if k != CREATED))

    def remove_if_empty(self) -> None:
        """rmdir every directory of this cgroup that holds nothing; never waits or raises.

        For a parent shared by many containers, such as the daemon's /moor: the
        last container out cannot know it was last, the daemon leaving can.
        """
        for directory in self._dirs():
            try:
                os.rmdir(directory)
            except OSError:
                pass  # still holds a container, or already gone

    def create(self, resources: dict[str, Any] | None) -> None:
        """mkdir the cgroup in every hierarchy and apply `resources`; on error undo the mkdirs."""
        resources = resources or {}
        self._validate(resources)
        created: list[str] = []
        try:
            for directory in self._dirs():
                top = fs.make_path(directory)
                if top is not None:
                    created.append(top)
                    # Recorded as it goes, so that a failure in the next hierarchy
                    # still removes this one.
                    self.paths[CREATED] = "\n".join(created)
            self._prepare()
            self._set(resources)
        except BaseException:
            try:
                self.destroy()
            except MoorError:
                pass  # the error that stopped create() is the one worth reporting
            raise

    def apply(self, resources: dict[str, Any] | None) -> None:
        """Write `resources` into the cgroup create() made (for `update`)."""
        resources = resources or {}
        self._validate(resources)
        self._set(resources)

    def add_process(self, pid: int) -> None:
        for directory in self._dirs():
            self.add_process_to(directory, pid)

    @staticmethod
    def add_process_to(directory: str, pid: int) -> None:
        """Move `pid` into one of the cgroup's directories."""
        fs.write(directory + "/cgroup.procs", str(pid))

    def unified_dir(self) -> str | None:
        """The directory in the cgroup2 tree (v2, or a hybrid host's unified tree)."""
        return self.paths.get("")

    def join_self(self) -> None:
        """Move the calling single-threaded process into every v1 hierarchy's directory
        (the cgroup2 one is joined at the fork: libc.fork_into_cgroup).

        "0" written to `tasks` moves one thread, the caller: the kernel then takes no
        global lock, where every cgroup.procs write takes the threadgroup rwsem for
        writing and the first after a quiet spell waits out an RCU grace period
        (8-12 ms of every exec, measured on this hybrid host)."""

    def fork_into(self) -> tuple[int, str | None]:
        """fork(); (the pid or 0, the cgroup2 directory the child was not born in and
        must still be moved to: None when clone3 put it there or there is none).

        The child is born in the cgroup2 directory (libc.fork_into_cgroup), so no
        cgroup.procs write takes the global threadgroup lock; the raw clone is only
        for a single-threaded caller whose child runs the runtime's code to an exec
        or os._exit."""
        unified = self.unified_dir()
        if unified is None:
            return os.fork(), None
        try:
            fd = os.open(unified, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as err:
            raise SystemFailure(f"cgroup: cannot open {unified}: {err.strerror}") from err
        try:
            return libc.fork_into_cgroup(fd), None
        except OSError as err:
            # Before Linux 5.7, or a seccomp filter that refuses clone3: the pid is written.
            if err.errno not in (errno.ENOSYS, errno.EPERM, errno.E2BIG, errno.EINVAL):
                raise SystemFailure(f"cgroup: cannot start a process in {unified}: "
                                    f"{err.strerror}") from err
            return os.fork(), unified
        finally:
            os.close(fd)

    def pids(self) -> list[int]:
        """Every process in the cgroup and in the sub-cgroups its processes made."""
        pids = []
        for dirpath, _, _ in os.walk(self._main_dir()):
            procs = fs.read_if_exists(dirpath + "/cgroup.procs")
            if procs:
                pids.extend(int(pid) for pid in procs.split())
        return pids

    def kill_all(self, sig: int) -> None:
        """Send `sig` to every process in the cgroup."""
        # An empty cgroup has no process that could fork while we signal: no freeze,
        # which costs two freezer writes and a poll (the delete after every exit of a
        # container with a pid namespace of its own finds it empty).
        if not self.pids():
            return
        was_frozen = self.frozen()
        # Frozen processes cannot fork between our reading the pid list and the
        # signal, so none escapes (runc's signalAllProcesses does the same). If the
        # freeze fails, signal anyway: this is what delete --force relies on.
        froze = False
        if not was_frozen:
            try:
                self.freeze()
                froze = True
            except SystemFailure:
                pass
        try:
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            # Other signals wait for `resume` on a paused container as they should;
            # SIGKILL must thaw it, or cgroup v1's frozen processes never die.
            if froze or (was_frozen and sig == signals.SIGKILL):
                self.thaw()

    def destroy(self) -> None:
        """rmdir what create() made, deepest first; idempotent."""
        tops = self.paths.get(CREATED)
        if not tops:
            return
        for directory in self._dirs():
            for top in tops.split("\n"):
                if directory == top or directory.startswith(top + "/"):
                    fs.remove_path(directory, top)
                    break
        # Forget them: a directory of the same name made later is not ours.
        del self.paths[CREATED]

    def _main_dir(self) -> str:
        """The directory whose cgroup.procs lists the container's processes."""
        raise NotImplementedError

    def _validate(self, resources: dict[str, Any]) -> None:
        """Reject what this cgroup version cannot do, before anything is written."""
        raise NotImplementedError

    def _prepare(self) -> None:
        """Make freshly created directories usable (cpuset in v1)."""

    def _set(self, resources: dict[str, Any]) -> None:
        raise NotImplementedError

    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def frozen(self) -> bool:
        raise NotImplementedError

    def stats(self) -> dict[str, int | None]:
        """memory_usage, memory_limit (None: unlimited), cpu_usage_ns, pids_current.

        A key is absent when its controller is not in use.
        """
        raise NotImplementedError

    def oom_kills_file(self) -> str:
        """The flat keyed file whose `oom_kill` line counts this cgroup's OOM kills; ""
        without the memory controller. A shim reads it at the exit with read_oom_kills."""
        raise NotImplementedError


def read_oom_kills(path: str) -> int:
    """The `oom_kill` count in an oom_kills_file; 0 when it cannot be read."""
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0
