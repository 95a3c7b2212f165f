"""The runtime side of the container lifecycle: create, start, kill, delete, pause.

runtime-spec runtime.md defines the operations; the state folder, exit codes
and messages follow runc so that callers written for runc work unchanged.
"""

from __future__ import annotations

import os
import time

from moorage import signals, timefmt
from moorage.errors import Conflict, InvalidParameter, MoorError, NotFound
from moorage.fsutil import atomic_write
from moorage.linux import libc
from moorage.runtime import config as config_mod
from moorage.runtime import rootfs as fs
from moorage.runtime import state as state_mod
from moorage.runtime.cgroups import load_manager, new_manager
from moorage.runtime.execfifo import release
from moorage.runtime.init import InitContext, stage1
from moorage.runtime.process import PreparedProcess
from moorage.runtime.sync import ChildFailed, pair


class CreateOptions:
    __slots__ = ("bundle", "cgroup_mode", "console_socket", "container_id", "no_pivot",
                 "pid_file", "preserve_fds", "root")

    def __init__(self, *, root: str, container_id: str, bundle: str, pid_file: str | None = None,
                 console_socket: str | None = None, preserve_fds: int = 0,
                 no_pivot: bool = False, cgroup_mode: str = "auto") -> None:
        self.root = root
        self.container_id = container_id
        self.bundle = os.path.abspath(bundle)
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.preserve_fds = preserve_fds
        self.no_pivot = no_pivot
        self.cgroup_mode = cgroup_mode


class Created:
    """A container whose init waits on its exec fifo, plus what `run` still needs."""

    __slots__ = ("console", "state")

    def __init__(self, state: state_mod.ContainerState, console: object | None) -> None:
        self.state = state
        self.console = console


def spec_state(st: state_mod.ContainerState, status: str) -> dict:
    """The state document of runtime-spec runtime.md, as hooks and `state` show it."""
    return {"ociVersion": st.config["ociVersion"], "id": st.id, "status": status,
            "pid": st.pid if status != "stopped" else 0, "bundle": st.bundle,
            "annotations": st.annotations()}


def _hooks(st: state_mod.ContainerState, name: str, status: str) -> None:
    hooks = st.config.get("hooks", {}).get(name)
    if hooks:
        from moorage.runtime.hooks import run_hooks

        run_hooks(hooks, name, spec_state(st, status))


# Device rules every container gets after its own (runc's specconv.AllowedDevices):
# mknod of any node, the default devices, ptys and tun.
_ALLOWED_DEVICES = (
    {"allow": True, "type": "c", "access": "m"}, {"allow": True, "type": "b", "access": "m"},
    *({"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"}
      for major, minor in ((1, 3), (1, 8), (1, 7), (5, 0), (1, 5), (1, 9), (136, None),
                           (5, 2), (10, 200))),
)


def cgroup_resources(linux: dict) -> dict:
    """linux.resources with the device rules the runtime adds on its own. The nodes of
    linux.devices get none: their access is what the config's rules give (runc's
    createDevices returns only its default devices for the cgroup), so a device made
    read-only there stays so."""
    resources = dict(linux.get("resources") or {})
    resources["devices"] = [*(resources.get("devices") or ()), *_ALLOWED_DEVICES]
    return resources


def _cgroup_mounts(paths: dict[str, str]) -> list[tuple[str, str]]:
    """(hierarchy name, the container's folder in it) for the /sys/fs/cgroup mount."""
    v1: list[tuple[str, str]] = []
    unified: str | None = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fstype not in ("cgroup", "cgroup2"):
                continue
            point = fields[4]
            inside = next((p for p in paths.values()
                           if isinstance(p, str) and (p == point or p.startswith(point + "/"))),
                          None)
            if inside is None:
                continue
            if fstype == "cgroup":
                v1.append((os.path.basename(point), inside))
            else:
                unified = inside
    if v1:
        return v1
    return [("", unified)] if unified else []


def _write_id_maps(pid: int, linux: dict) -> None:
    for key, name in (("uidMappings", "uid_map"), ("gidMappings", "gid_map")):
        lines = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n"
                        for m in linux.get(key) or ())
        if lines:
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(lines)


def _connect_console(path: str) -> object:
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as err:
        sock.close()
        raise InvalidParameter(f"cannot connect to console socket {path}: {err.strerror}") \
            from None
    return sock


def warm_up(spec: bytes) -> None:
    """What create computes from a spec (config.json's bytes) before it changes anything,
    thrown away: a process forked ahead of its create (shim.driver.AheadChild) so takes
    the first page faults of that work off the start's path (~1 ms of a `docker run`,
    measured). Raises what create would for a bad spec."""
    _prepared_process(config_mod.parse(spec, "config.json"))


def _prepared_process(config: dict) -> PreparedProcess:
    linux = config.get("linux", {})
    seccomp = None
    if linux.get("seccomp") and linux["seccomp"].get("defaultAction"):
        from moorage.runtime.seccomp import compile_filter

        seccomp = compile_filter(linux["seccomp"])
    return PreparedProcess(config["process"], seccomp)


def create(opts: CreateOptions, *, internal_console: bool = False) -> Created:
    """Create the container and return once its init waits for `start`.

    On any failure everything made so far (state folder, cgroup, processes)
    is removed before the error propagates.
    """
    config = config_mod.load(opts.bundle)
    rootfs = config_mod.rootfs_path(opts.bundle, config)
    process = config["process"]
    prepared = _prepared_process(config)
    if process.get("terminal") and not opts.console_socket and not internal_console:
        raise InvalidParameter("cannot allocate tty if moor-runtime will detach without "
                               "setting console socket")
    if not process.get("terminal") and opts.console_socket:
        raise InvalidParameter("cannot use console socket if moor-runtime will not detach "
                               "or allocate tty")
    directory = state_mod.reserve(opts.root, opts.container_id)
    cleanup: list = [lambda: state_mod.remove(directory)]
    try:
        return _create(opts, config, rootfs, prepared, directory, cleanup, internal_console)
    except BaseException:
        for undo in reversed(cleanup):
            try:
                undo()
            except Exception:
                pass
        raise


def _create(opts: CreateOptions, config: dict, rootfs: str, prepared: PreparedProcess,
            directory: str, cleanup: list, internal_console: bool) -> Created:
    linux = config.get("linux", {})
    cgroup = new_manager(linux.get("cgroupsPath"), opts.container_id, opts.cgroup_mode)
    fifo_path = os.path.join(directory, state_mod.FIFO_NAME)
    os.mkfifo(fifo_path)
    # Writable by the container's user whoever it is, readable only by us (runc's mode).
    os.chmod(fifo_path, 0o622)
    # runc opens the fifo O_PATH before pivot_root and re-opens it through
    # /proc/self/fd later, when the host path is out of the container's reach.
    fifo_fd = os.open(fifo_path, os.O_PATH | os.O_CLOEXEC)
    console = console_child = None
    if opts.console_socket:
        console = _connect_console(opts.console_socket)
        console_child = console
    elif internal_console and config["process"].get("terminal"):
        import socket

        console, console_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    # The cgroups are made while the init forks, unshares and mounts on the other
    # CPU (they took 5.6 ms of the shim's 23 ms create before its fork, measured).
    # The init waits for a byte on this pipe before it mounts them, or before it
    # joins them when it joins them itself (InitContext.self_join). We keep the
    # read end open until we have written, so the write can never SIGPIPE a shim
    # (which runs with SIGPIPE's default action) when the init has died first.
    cgroups_r, cgroups_w = os.pipe()
    ctx = InitContext(
        container_id=opts.container_id, config=config, bundle=opts.bundle, rootfs=rootfs,
        process=prepared, fifo_fd=fifo_fd, cgroups_fd=cgroups_r,
        console_fd=console_child.fileno() if console_child is not None else None,
        preserve_fds=opts.preserve_fds, no_pivot=opts.no_pivot,
        cgroup_mounts=_cgroup_mounts(cgroup.paths),
        join_cgroup_first="cgroup" in _new_namespaces(config),
        self_join=cgroup if _init_joins_itself(config) else None)
    st = state_mod.ContainerState(directory, {
        "id": opts.container_id, "pid": 0, "bundle": opts.bundle, "rootfs": rootfs,
        "created": timefmt.now(), "config": config, "cgroup_paths": cgroup.paths})
    parent, child = pair()
    stage1_pid = os.fork()
    if stage1_pid == 0:
        parent.close()
        os.close(cgroups_w)
        stage1(ctx, child)
    child.close()
    os.close(fifo_fd)
    if console_child is not None and console_child is not console:
        console_child.close()  # type: ignore[attr-defined]

    def kill_init() -> None:
        for pid in (st.pid, stage1_pid):
            if pid > 0:
                try:
                    os.kill(pid, signals.SIGKILL)
                except ProcessLookupError:
                    pass
        _reap(stage1_pid)

    cleanup.append(kill_init)
    new_namespaces = _new_namespaces(config)
    try:
        try:
            cgroup.create(cgroup_resources(linux))
            os.write(cgroups_w, b"1")
        finally:
            os.close(cgroups_w)
            os.close(cgroups_r)
        # Destroyed after the init is killed: a cgroup with a process in it stays.
        cleanup.insert(len(cleanup) - 1, cgroup.destroy)
        if ctx.join_cgroup_first:
            cgroup.add_process(stage1_pid)
            parent.send("go")
        message = parent.expect("userns" if "user" in new_namespaces else "pid")
        if "user" in new_namespaces:
            _write_id_maps(stage1_pid, linux)
            parent.send("mapped")
            message = parent.expect("pid")
        st.pid = int(message)
        if not ctx.join_cgroup_first and ctx.self_join is None:
            # The first cgroup.procs write waits out an RCU grace period (~5 ms);
            # the init builds its rootfs meanwhile and execs only after "continue".
            cgroup.add_process(st.pid)
        _reap(stage1_pid)
        st.start_time = state_mod.process_start_time(st.pid)
        parent.expect("hooks")
        if shares_mounts(config):
            cleanup.append(lambda: fs.detach_shared_root(rootfs))
        _hooks(st, "prestart", "creating")
        _hooks(st, "createRuntime", "creating")
        parent.send("continue")
        # Written while the init pivots and readies itself on the other CPU; a failure
        # from here on removes it with the state folder.
        st.save()
        parent.expect("ready")
    except ChildFailed as err:
        raise MoorError(str(err)) from None
    finally:
        parent.close()
    if opts.pid_file:
        write_pid_file(opts.pid_file, st.pid)
    if opts.console_socket and console is not None:
        console.close()  # type: ignore[attr-defined]
        console = None
    return Created(st, console)


def shares_mounts(config: dict) -> bool:
    """True when the container runs in the caller's mount namespace (no "mount" entry)."""
    return all(ns["type"] != "mount" for ns in config.get("linux", {}).get("namespaces", []))


def _init_joins_itself(config: dict) -> bool:
    """Whether stage 1 can join the container's cgroup itself (InitContext.self_join):
    with the host's rights on the host's cgroup files, so in no user namespace and no
    mount namespace joined by path, and with no cgroup namespace to be rooted there."""
    namespaces = config.get("linux", {}).get("namespaces", [])
    return not any(ns["type"] in ("user", "cgroup") or (ns["type"] == "mount" and ns.get("path"))
                   for ns in namespaces)


def _new_namespaces(config: dict) -> set[str]:
    return {ns["type"] for ns in config.get("linux", {}).get("namespaces", [])
            if not ns.get("path")}


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def write_pid_file(path: str, pid: int) -> None:
    atomic_write(path, str(pid), sync=False)


def start(root: str, container_id: str) -> state_mod.ContainerState:
    st = state_mod.load(root, container_id)
    status = current_status(st)
    if status == "stopped":
        raise Conflict("cannot start a container that has stopped")
    if status != "created":
        raise Conflict(f"cannot start an already {status} container")
    release(st.fifo, st.pid, st.start_time)
    # runc 1.1 reports "created" to poststart hooks: the state it last recorded.
    _hooks(st, "poststart", "created")
    return st


def current_status(st: state_mod.ContainerState) -> str:
    if not st.alive():
        return "stopped"
    if os.path.exists(st.fifo):
        return "created"
    return "paused" if load_manager(st.cgroup_paths).frozen() else "running"


def status(root: str, container_id: str) -> tuple[state_mod.ContainerState, str]:
    st = state_mod.load(root, container_id)
    return st, current_status(st)


def state_document(root: str, container_id: str) -> dict:
    st, current = status(root, container_id)
    document = {"ociVersion": st.config["ociVersion"], "id": st.id,
                "pid": st.pid if current != "stopped" else 0, "status": current,
                "bundle": st.bundle, "rootfs": st.rootfs, "created": st.created, "owner": ""}
    if st.annotations():
        document["annotations"] = st.annotations()
    return document


def parse_signal(value: str) -> int:
    number = signals.parse(value)
    if number is None:
        raise InvalidParameter(f"unknown signal {value!r}")
    return number


def kill(root: str, container_id: str, sig: int, all_processes: bool = False) -> None:
    st, current = status(root, container_id)
    if current == "stopped":
        raise Conflict("container not running")
    if all_processes:
        load_manager(st.cgroup_paths).kill_all(sig)
    else:
        os.kill(st.pid, sig)


def delete(root: str, container_id: str, force: bool = False) -> None:
    try:
        st, current = status(root, container_id)
    except NotFound:
        if force:
            return
        raise
    if current in ("running", "paused") and not force:
        raise Conflict(f"cannot delete container {container_id} that is not stopped: {current}")
    destroy(st, current)


def destroy(st: state_mod.ContainerState, current: str) -> None:
    """Kill whatever is left, free the cgroup, run poststop hooks, forget the container."""
    cgroup = load_manager(st.cgroup_paths)
    if current != "stopped":
        if current == "paused":
            cgroup.kill_all(signals.SIGKILL)
            cgroup.thaw()
        try:
            os.kill(st.pid, signals.SIGKILL)
        except ProcessLookupError:
            pass
        _wait_gone(st)
    # Without a pid namespace the init's death does not end its children.
    cgroup.kill_all(signals.SIGKILL)
    cgroup.destroy()
    if shares_mounts(st.config):
        fs.detach_shared_root(st.rootfs)
    try:
        _hooks(st, "poststop", "stopped")
    finally:
        state_mod.remove(st.dir)


def _wait_gone(st: state_mod.ContainerState) -> None:
    deadline = time.monotonic() + 10
    while st.alive() and time.monotonic() < deadline:
        try:
            os.waitpid(st.pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.005)


def pause(root: str, container_id: str) -> None:
    st, current = status(root, container_id)
    if current != "running":
        raise Conflict(f"container not running: {current}")
    load_manager(st.cgroup_paths).freeze()


def resume(root: str, container_id: str) -> None:
    st, current = status(root, container_id)
    if current != "paused":
        raise Conflict(f"container not paused: {current}")
    load_manager(st.cgroup_paths).thaw()


def set_subreaper() -> None:
    libc.prctl(libc.PR_SET_CHILD_SUBREAPER, 1)


def run(opts: CreateOptions, *, detach: bool) -> int:
    """create + start; in the foreground, wait and delete, returning the exit status."""
    from moorage.runtime.foreground import wait_for

    set_subreaper()
    created = create(opts, internal_console=not detach)
    st = created.state
    master = None
    try:
        if created.console is not None:
            from moorage.runtime.console import receive_master
            from moorage.runtime.foreground import copy_size

            master = receive_master(created.console)
            created.console.close()  # type: ignore[attr-defined]
            # Before start, so the process never sees a 0x0 terminal.
            copy_size(master)
        start(opts.root, opts.container_id)
    except BaseException:
        destroy(st, current_status(st))
        raise
    if detach:
        return 0
    try:
        return wait_for(st.pid, master)
    finally:
        destroy(st, current_status(st))
