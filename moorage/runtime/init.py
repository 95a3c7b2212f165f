"""The container side of `create`: what the forked processes do before the user's program.

Stage 1 runs in the runtime's namespaces: it joins the namespaces given by
path, creates the new ones (the user namespace first, so that the others
belong to it), and forks stage 2, which the new pid namespace makes pid 1.
Stage 2 builds the filesystem, pivots into it, becomes the configured user,
reports "ready", and blocks on the exec fifo until `start` opens it, then execs.
Both report failures as one "error <text>" line on the sync channel.
"""

from __future__ import annotations

import os

from moorage.linux import libc
from moorage.runtime import rootfs as fs
from moorage.runtime.config import NAMESPACE_FLAGS

# Imported up front when asked for: past pivot_root nothing can be imported.
_traceback = __import__("traceback") if os.environ.get("MOOR_RUNTIME_DEBUG") else None

# Not typing.TYPE_CHECKING: importing typing costs milliseconds on the start path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType

    from moorage.runtime.cgroups import CgroupManager
    from moorage.runtime.process import PreparedProcess
    from moorage.runtime.sync import Channel


class InitContext:
    """What the init stages need; built by the runtime before it forks."""

    __slots__ = ("bundle", "cgroup_mounts", "cgroups_fd", "config", "console_fd",
                 "container_id", "fifo_fd", "join_cgroup_first", "no_pivot", "preserve_fds",
                 "process", "rootfs", "self_join")

    def __init__(self, *, container_id: str, config: dict, bundle: str, rootfs: str,
                 process: PreparedProcess, fifo_fd: int, cgroups_fd: int,
                 console_fd: int | None, preserve_fds: int, no_pivot: bool,
                 cgroup_mounts: list[tuple[str, str]], join_cgroup_first: bool,
                 self_join: CgroupManager | None = None) -> None:
        self.container_id = container_id
        self.config = config
        self.bundle = bundle
        self.rootfs = rootfs
        self.process = process
        self.fifo_fd = fifo_fd
        # Gives one byte once the runtime has made the container's cgroups.
        self.cgroups_fd = cgroups_fd
        self.console_fd = console_fd
        self.preserve_fds = preserve_fds
        self.no_pivot = no_pivot
        self.cgroup_mounts = cgroup_mounts
        # A new cgroup namespace is rooted at the cgroup its creator is in.
        self.join_cgroup_first = join_cgroup_first
        # The container's cgroup, which stage 1 joins itself and forks stage 2 into,
        # so that no process moves the init: every cgroup.procs write takes the
        # kernel's global threadgroup lock, and the first after a quiet spell waits
        # out an RCU grace period holding the cgroup mutex, which every cgroup mkdir
        # of the host then waits for too (5-15 ms a create, measured). None: the
        # runtime writes the init's pid (a user namespace: stage 1 has no rights on
        # the host's cgroup files; a cgroup namespace: stage 1 joins before it).
        self.self_join = self_join


def report_and_exit(channel: Channel, err: BaseException) -> None:
    """Send the failure up as one line and leave without running Python's exit hooks.

    Never returns, whatever happens while reporting: a forked child that
    unwound into the runtime's own code would act as a second runtime.
    """
    try:
        if _traceback is not None:
            _traceback.print_exception(err)
        text = err.strerror if isinstance(err, OSError) else None
        message = str(err) if not text else (f"{text}: {err.filename}" if err.filename else text)
        line = " ".join(message.split())
        try:
            channel.send("error " + line)
        except OSError:
            # The runtime stopped listening once the container was created: the
            # failure happened between create and exec, stderr is all that is left.
            os.write(2, f"moor-runtime: container init: {line}\n".encode())
    finally:
        os._exit(1)


def join_namespaces(namespaces: list[dict], only_user: bool) -> None:
    """setns into every namespace given by path: the user one alone first, then the rest."""
    for ns in namespaces:
        path = ns.get("path")
        if not path or (ns["type"] == "user") != only_user:
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            raise OSError(err.errno, f"open {ns['type']} namespace {path}: "
                                     f"{os.strerror(err.errno)}") from None
        try:
            libc.setns(fd, NAMESPACE_FLAGS[ns["type"]])
        except OSError as err:
            raise OSError(err.errno, f"join {ns['type']} namespace {path}: "
                                     f"{os.strerror(err.errno)}") from None
        finally:
            os.close(fd)


def stage1(ctx: InitContext, channel: Channel) -> None:
    try:
        if ctx.join_cgroup_first:
            channel.expect("go")
        namespaces = ctx.config.get("linux", {}).get("namespaces", [])
        join_namespaces(namespaces, only_user=True)
        join_namespaces(namespaces, only_user=False)
        new = {ns["type"] for ns in namespaces if not ns.get("path")}
        if "user" in new:
            libc.unshare(libc.CLONE_NEWUSER)
            channel.send("userns")
            channel.expect("mapped")
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        flags = 0
        for kind in new - {"user"}:
            flags |= NAMESPACE_FLAGS[kind]
        libc.unshare(flags)
        pid = os.fork() if ctx.self_join is None else _fork_in_cgroup(ctx, ctx.self_join)
        if pid == 0:
            stage2(ctx, channel, userns="user" in {ns["type"] for ns in namespaces})
        os._exit(0)
    except BaseException as err:
        report_and_exit(channel, err)


def _fork_in_cgroup(ctx: InitContext, cgroup: CgroupManager) -> int:
    """Once the runtime has made the cgroup: into its v1 directories ("0" in `tasks`
    moves the calling thread, without the global lock), then fork stage 2 born in its
    cgroup2 directory (clone3), or moved there by its pid where clone3 cannot."""
    _wait_for_cgroups(ctx.cgroups_fd)
    cgroup.join_self()
    pid, still_to_join = cgroup.fork_into()
    if pid and still_to_join is not None:
        cgroup.add_process_to(still_to_join, pid)
    return pid


def stage2(ctx: InitContext, channel: Channel, *, userns: bool) -> None:
    try:
        _stage2(ctx, channel, userns)
    except BaseException as err:
        report_and_exit(channel, err)


def _stage2(ctx: InitContext, channel: Channel, userns: bool) -> None:
    # The host's /proc is still mounted here, so /proc/self names our host pid.
    # Sending it from here, not from stage 1, keeps one writer on the channel.
    host_pid = int(os.readlink("/proc/self"))
    channel.send(f"pid {host_pid}")
    config = ctx.config
    linux = config.get("linux", {})
    mounts = config.get("mounts", [])
    rootfs = ctx.rootfs
    own_mounts = any(ns["type"] == "mount" for ns in linux.get("namespaces", []))
    fs.prepare_root(rootfs, linux.get("rootfsPropagation"), own_mount_namespace=own_mounts)
    fs.mount_all(rootfs, ctx.bundle, mounts, ctx.cgroup_mounts,
                 cgroupns=any(ns["type"] == "cgroup" for ns in linux.get("namespaces", [])),
                 cgroups_ready=_no_wait if ctx.self_join is not None
                 else lambda: _wait_for_cgroups(ctx.cgroups_fd))
    if any(m["destination"] == "/dev" for m in mounts):
        fs.create_devices(rootfs, linux.get("devices") or [], userns)
    hooks = config.get("hooks", {})
    # Past pivot_root the host's Python library is out of reach: import now.
    console = _import_console() if ctx.console_fd is not None else None
    if hooks.get("startContainer"):
        import moorage.runtime.hooks  # noqa: F401
    channel.send("hooks")
    channel.expect("continue")
    if hooks.get("createContainer"):
        # In the container's namespaces but before pivot_root, so the hook's
        # path is still the host's (runtime-spec config.md createContainer).
        _run_hooks(ctx, "createContainer", "creating", host_pid)
    if not own_mounts:
        fs.chroot_root(rootfs)
    elif ctx.no_pivot:
        fs.move_root(rootfs)
    else:
        fs.pivot(rootfs)
    if linux.get("sysctl"):
        fs.write_sysctls(linux["sysctl"])
    # Empty: not set, as runc (without a UTS namespace of its own, that would be the host's).
    if config.get("hostname"):
        libc.sethostname(config["hostname"])
    if config.get("domainname"):
        libc.setdomainname(config["domainname"])
    for path in linux.get("readonlyPaths") or ():
        fs.readonly_path(path)
    for path in linux.get("maskedPaths") or ():
        fs.mask_path(path)
    if console is not None and ctx.console_fd is not None:
        console.attach_new_pty(ctx.console_fd, as_console=True)
    else:
        os.setsid()
    if config["root"].get("readonly"):
        fs.readonly_root()
    cwd = ctx.process.cwd
    if cwd != "/" and not os.path.isdir(cwd):
        os.makedirs(cwd, 0o755, exist_ok=True)
    executable = ctx.process.finalize()
    keep_only_preserved_fds(3 + ctx.preserve_fds)
    channel.send("ready")
    fifo = os.open(f"/proc/self/fd/{ctx.fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
    os.write(fifo, b"0")
    os.close(fifo)
    os.close(ctx.fifo_fd)
    if hooks.get("startContainer"):
        _run_hooks(ctx, "startContainer", "created", os.getpid())
    ctx.process.execve(executable)


def _wait_for_cgroups(fd: int) -> None:
    """Block until the runtime has made the cgroups; leave quietly if it gave up.

    End of file without the go byte means the runtime failed and is reporting
    its own error: a second line from here would only confuse the user.
    """
    ready = os.read(fd, 1)
    os.close(fd)
    if not ready:
        os._exit(1)


def _no_wait() -> None:
    """Stage 1 waited for the cgroups before it forked this stage into them."""


def _import_console() -> ModuleType:
    from moorage.runtime import console

    return console


def _run_hooks(ctx: InitContext, name: str, status: str, pid: int) -> None:
    from moorage.runtime.hooks import run_hooks

    run_hooks(ctx.config["hooks"][name], name, {
        "ociVersion": ctx.config["ociVersion"], "id": ctx.container_id, "status": status,
        "pid": pid, "bundle": ctx.bundle, "annotations": ctx.config.get("annotations") or {}})


def keep_only_preserved_fds(first_closed: int) -> None:
    """Pass fds 3..first_closed-1 (--preserve-fds) to the process, close the rest at exec."""
    for fd in range(3, first_closed):
        os.set_inheritable(fd, True)
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return
    for name in names:
        fd = int(name)
        if fd >= first_closed:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass
