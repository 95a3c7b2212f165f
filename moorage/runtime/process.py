"""The last steps before the container's process runs, shared by the init and by exec.

rlimits, umask, no_new_privs, user and capabilities, seccomp, working folder,
then execve. Seccomp goes before the capability drop when no_new_privs is off
(loading a filter then needs CAP_SYS_ADMIN), and last otherwise, so the filter
sees as few of the runtime's own syscalls as possible (runc's order).
"""

from __future__ import annotations

import os
import resource

from moorage.errors import NotFound
from moorage.linux import libc
from moorage.runtime.capabilities import CapabilitySets, switch_user
from moorage.runtime.config import RLIMITS

# Not typing.TYPE_CHECKING: importing typing costs milliseconds on the start path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from moorage.runtime.seccomp import SeccompFilter


def set_rlimits(rlimits: list[dict]) -> None:
    for rlimit in rlimits:
        resource.setrlimit(RLIMITS[rlimit["type"]], (rlimit["soft"], rlimit["hard"]))


# runc's words, which dockerd and the docker CLI pass on to the user.
_STARTING = "unable to start container process: "


def find_executable(name: str, env: list[str]) -> str:
    """Resolve args[0] with the container's PATH, before the start, as runc does."""
    if "/" in name:
        candidates = [name]
    else:
        path = next((e[5:] for e in env if e.startswith("PATH=")), "")
        candidates = [os.path.join(d or ".", name) for d in path.split(":")]
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    if "/" in name:
        if os.path.exists(name):
            raise PermissionError(13, f'{_STARTING}exec: "{name}": permission denied')
        raise NotFound(f'{_STARTING}exec: "{name}": stat {name}: no such file or directory')
    raise NotFound(f'{_STARTING}exec: "{name}": executable file not found in $PATH')


def _warn_unsupported_lsm(process: dict) -> None:
    """AppArmor and SELinux labels need the LSM on the host; without it runc goes on."""
    profile = process.get("apparmorProfile")
    if profile and not _apparmor_enabled():
        os.write(2, f"moor-runtime: warning: AppArmor is not enabled on this host, "
                    f"ignoring apparmorProfile {profile!r}\n".encode())
    label = process.get("selinuxLabel")
    if label and not os.path.exists("/sys/fs/selinux/enforce"):
        os.write(2, f"moor-runtime: warning: SELinux is not enabled on this host, "
                    f"ignoring selinuxLabel {label!r}\n".encode())


def _apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def home_of(uid: int) -> str:
    """The user's home in the container's /etc/passwd, "/" when it has none (as runc)."""
    try:
        with open("/etc/passwd") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5] or "/"
    except OSError:
        pass
    return "/"


class PreparedProcess:
    """Everything the last steps need, computed before the fork so errors surface early."""

    __slots__ = ("args", "caps", "cwd", "env", "gid", "groups", "nnp", "oom_score_adj",
                 "rlimits", "seccomp", "uid", "umask")

    def __init__(self, process: dict, seccomp: SeccompFilter | None) -> None:
        _warn_unsupported_lsm(process)
        user = process.get("user") or {}
        self.args: list[str] = process["args"]
        self.env: list[str] = process.get("env") or []
        self.cwd: str = process.get("cwd") or "/"
        self.uid: int = user.get("uid", 0)
        self.gid: int = user.get("gid", 0)
        self.groups: list[int] = user.get("additionalGids") or []
        self.umask: int | None = user.get("umask")
        self.nnp: bool = bool(process.get("noNewPrivileges"))
        self.rlimits: list[dict] = process.get("rlimits") or []
        self.oom_score_adj: int | None = process.get("oomScoreAdj")
        self.caps = CapabilitySets(process.get("capabilities"))
        self.seccomp = seccomp

    def finalize(self) -> str:
        """Switch to the process's identity; return the path to exec. Runs in the container."""
        if self.oom_score_adj is not None:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(self.oom_score_adj))
        set_rlimits(self.rlimits)
        if self.umask is not None:
            os.umask(self.umask)
        try:
            os.chdir(self.cwd)
        except OSError as err:
            raise OSError(err.errno, f"chdir to cwd ({self.cwd!r}) set in config.json failed: "
                                     f"{os.strerror(err.errno)}") from None
        if self.nnp:
            libc.prctl(libc.PR_SET_NO_NEW_PRIVS, 1)
        if self.seccomp is not None and not self.nnp:
            self.seccomp.load()
        if not any(item.startswith("HOME=") for item in self.env):
            self.env = [*self.env, f"HOME={home_of(self.uid)}"]
        switch_user(self.uid, self.gid, self.groups, self.caps)
        # Changing credentials made us non-dumpable, which locks /proc/self/fd
        # (the exec fifo is reopened through it); execve resets the flag anyway.
        libc.prctl(libc.PR_SET_DUMPABLE, 1)
        executable = find_executable(self.args[0], self.env)
        if self.seccomp is not None and self.nnp:
            self.seccomp.load()
        return executable

    def execve(self, executable: str) -> None:
        env = {}
        for item in self.env:
            key, _, value = item.partition("=")
            env[key] = value
        os.execve(executable, self.args, env)
