"""`exec`: a new process inside a running container's namespaces and cgroup.

A first child, born in the container's cgroup2 directory (clone3 with
CLONE_INTO_CGROUP), moves itself into the v1 hierarchies (CgroupManager.join_self):
neither takes the kernel's global threadgroup lock, whose first writer waits out an
RCU grace period, 8-12 ms of every exec when the runtime wrote the child's pid into
each cgroup.procs. It then joins the namespaces (the user namespace first, so it
holds the capabilities to join the rest) and forks the process proper, because
joining a pid namespace only applies to children. The process then goes through
the same last steps as the init (runtime/process.py).
"""

from __future__ import annotations

import copy
import os

from moorage.errors import Conflict, MoorError
from moorage.linux import libc
from moorage.runtime import config as config_mod
from moorage.runtime.cgroups import CgroupManager, load_manager
from moorage.runtime.container import (
    current_status,
    set_subreaper,
    shares_mounts,
    write_pid_file,
)
from moorage.runtime.process import PreparedProcess
from moorage.runtime.state import load
from moorage.runtime.sync import Channel, ChildFailed, pair

# Join order: user first (it grants the rights for the rest), mount late.
_JOIN_ORDER = ("user", "ipc", "uts", "net", "pid", "cgroup", "mnt")
_SETNS_FLAGS = {"user": libc.CLONE_NEWUSER, "ipc": libc.CLONE_NEWIPC, "uts": libc.CLONE_NEWUTS,
                "net": libc.CLONE_NEWNET, "pid": libc.CLONE_NEWPID,
                "cgroup": libc.CLONE_NEWCGROUP, "mnt": libc.CLONE_NEWNS}


def build_process(base: dict, *, args: list[str], env: list[str], cwd: str | None,
                  user: str | None, additional_gids: list[int], caps: list[str],
                  terminal: bool, no_new_privs: bool) -> dict:
    """The process for `exec ARGS...`: the container's own, with the flags applied."""
    process = copy.deepcopy(base)
    process["args"] = args
    process["terminal"] = terminal
    if env:
        process["env"] = [*process.get("env", []), *env]
    if cwd:
        process["cwd"] = cwd
    if user:
        uid, _, gid = user.partition(":")
        process["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    if additional_gids:
        process.setdefault("user", {})["additionalGids"] = additional_gids
    if caps:
        sets = process.setdefault("capabilities", {})
        for key in ("bounding", "effective", "permitted", "ambient"):
            sets[key] = [*sets.get(key, []), *caps]
    if no_new_privs:
        process["noNewPrivileges"] = True
    return process


def exec_process(root: str, container_id: str, process: dict, *, detach: bool,
                 pid_file: str | None, console_socket: str | None, preserve_fds: int) -> int:
    st = load(root, container_id)
    if current_status(st) in ("stopped", "paused"):
        raise Conflict(f"cannot exec in a {current_status(st)} container")
    config_mod.validate_process(process)
    process.setdefault("cwd", "/")
    if process.get("terminal") and detach and not console_socket:
        raise MoorError("cannot allocate tty if moor-runtime will detach without setting "
                        "console socket")
    seccomp = None
    linux = st.config.get("linux", {})
    if linux.get("seccomp") and linux["seccomp"].get("defaultAction"):
        from moorage.runtime.seccomp import compile_filter

        seccomp = compile_filter(linux["seccomp"])
    prepared = PreparedProcess(process, seccomp)
    console = console_child = None
    if process.get("terminal"):
        import socket

        if console_socket:
            console = console_child = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            console.connect(console_socket)
        else:
            console, console_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    namespaces = _namespace_fds(st.pid)
    # In the caller's mount namespace the init chrooted: so does the new process.
    root_fd = (os.open(f"/proc/{st.pid}/root", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
               if shares_mounts(st.config) else None)
    set_subreaper()
    cgroup = load_manager(st.cgroup_paths)
    parent, child = pair()
    joiner, still_to_join = cgroup.fork_into()
    if joiner == 0:
        parent.close()
        _join_and_fork(child, cgroup, still_to_join is not None, namespaces, prepared,
                       console_child.fileno() if console_child else None, preserve_fds,
                       root_fd)
    child.close()
    if root_fd is not None:
        os.close(root_fd)
    for fd in namespaces.values():
        os.close(fd)
    if console_child is not None and console_child is not console:
        console_child.close()
    try:
        if still_to_join is not None:  # without clone3: the child waits for its pid's move
            cgroup.add_process_to(still_to_join, joiner)
            parent.send("go")
        pid = int(parent.expect("pid"))
        os.waitpid(joiner, 0)
        message = parent.recv()
        if message is not None:
            raise ChildFailed(message.partition(" ")[2])
    except ChildFailed as err:
        raise MoorError(str(err)) from None
    finally:
        parent.close()
    if pid_file:
        write_pid_file(pid_file, pid)
    master = None
    if console is not None:
        if console_socket:
            console.close()
        else:
            from moorage.runtime.console import receive_master
            from moorage.runtime.foreground import copy_size

            master = receive_master(console)
            console.close()
            copy_size(master)
    if detach:
        return 0
    from moorage.runtime.foreground import wait_for

    return wait_for(pid, master)


def _namespace_fds(pid: int) -> dict[str, int]:
    """Open the init's namespaces that differ from ours, before joining any of them."""
    fds = {}
    for name in _JOIN_ORDER:
        theirs = f"/proc/{pid}/ns/{name}"
        try:
            if os.stat(theirs).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
                continue
            fds[name] = os.open(theirs, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
    return fds


def _join_and_fork(channel: Channel, cgroup: CgroupManager, await_parent: bool,
                   namespaces: dict[str, int], prepared: PreparedProcess,
                   console_fd: int | None, preserve_fds: int, root_fd: int | None) -> None:
    from moorage.runtime.init import keep_only_preserved_fds, report_and_exit

    try:
        # Joining the mount namespace hides the host's Python library: import first.
        if console_fd is not None:
            from moorage.runtime.console import attach_new_pty
        cgroup.join_self()
        if await_parent:
            channel.expect("go")
        for name in _JOIN_ORDER:
            if name in namespaces:
                libc.setns(namespaces[name], _SETNS_FLAGS[name])
                os.close(namespaces[name])
        if root_fd is not None:
            os.fchdir(root_fd)
            os.chroot(".")
            os.close(root_fd)
        pid = os.fork()
        if pid:
            channel.send(f"pid {pid}")
            os._exit(0)
        if console_fd is not None:
            attach_new_pty(console_fd)
        executable = prepared.finalize()
        keep_only_preserved_fds(3 + preserve_fds)
        prepared.execve(executable)
    except BaseException as err:
        report_and_exit(channel, err)
