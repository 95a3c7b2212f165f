"""Building the container's filesystem view, run by the init inside its new mount namespace.

Order (runc's libcontainer/rootfs_linux.go prepareRootfs): root propagation,
the rootfs bind-mounted onto itself, the configured mounts, device nodes and
/dev links, pivot_root; then (after createContainer hooks and pivot) the
read-only and masked paths, and the read-only remount of / if asked.
"""

from __future__ import annotations

import errno
import os
import stat

from moorage.errors import InvalidParameter
from moorage.linux import libc
from moorage.runtime.mounts import (
    PROPAGATION,
    MountOptions,
    create_destination,
    open_target,
    resolve_in_root,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see init.py)
if TYPE_CHECKING:
    from collections.abc import Callable

# (name, type, major, minor): the devices every container gets
# (runtime-spec config-linux.md "Default Devices").
DEFAULT_DEVICES = (
    ("null", stat.S_IFCHR, 1, 3), ("zero", stat.S_IFCHR, 1, 5), ("full", stat.S_IFCHR, 1, 7),
    ("random", stat.S_IFCHR, 1, 8), ("urandom", stat.S_IFCHR, 1, 9),
    ("tty", stat.S_IFCHR, 5, 0),
)
_DEV_LINKS = (("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"),
              ("/proc/self/fd/1", "stdout"), ("/proc/self/fd/2", "stderr"))


def _mount_fd(source: str | None, fd: int, fstype: str | None, flags: int, data: str | None,
              where: str) -> None:
    try:
        libc.mount(source, f"/proc/self/fd/{fd}", fstype, flags, data or None)
    except OSError as err:
        raise OSError(err.errno, f"mount {source} on {where} ({fstype or 'bind'}): "
                                 f"{os.strerror(err.errno)}") from None


def prepare_root(rootfs: str, propagation: str | None, *, own_mount_namespace: bool) -> None:
    """Make the rootfs a mount point we may pivot into, isolated from the host's events.

    Without a mount namespace of its own the container shares the caller's tree:
    its "/" propagation is the caller's to choose, so it is left alone (runc turns
    it rslave); the rootfs' parent still goes private, as in runc, so the mounts
    made for the container do not spread to peer namespaces.
    """
    if own_mount_namespace:
        libc.mount(None, "/", None, PROPAGATION.get(propagation or "rslave",
                                                     libc.MS_SLAVE | libc.MS_REC))
    _make_parent_mount_private(rootfs)
    libc.mount(rootfs, rootfs, "bind", libc.MS_BIND | libc.MS_REC)


def _make_parent_mount_private(rootfs: str) -> None:
    # pivot_root refuses a new root whose parent mount is shared.
    best = ""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split(" ", 5)[4]
            if (rootfs == point or rootfs.startswith(point.rstrip("/") + "/")) and \
                    len(point) > len(best):
                best = point
    if best:
        libc.mount(None, best, None, libc.MS_PRIVATE)


def mount_all(rootfs: str, bundle: str, mounts: list[dict],
              cgroup_mounts: list[tuple[str, str]], cgroupns: bool,
              cgroups_ready: Callable[[], object]) -> None:
    """Mount every entry; `cgroups_ready` (called once, before the first cgroup mount
    or at the end) waits for the runtime to finish making the container's cgroups."""
    waiting = True
    for entry in mounts:
        if waiting and entry.get("type") in ("cgroup", "cgroup2"):
            cgroups_ready()
            waiting = False
        mount_entry(rootfs, bundle, entry, cgroup_mounts, cgroupns)
    if waiting:
        cgroups_ready()


def mount_entry(rootfs: str, bundle: str, entry: dict,
                cgroup_mounts: list[tuple[str, str]], cgroupns: bool) -> None:
    destination = entry["destination"]
    fstype = entry.get("type") or None
    source = entry.get("source")
    options = MountOptions(entry.get("options"))
    if fstype == "bind" or options.is_bind:
        _bind(rootfs, bundle, source, destination, options)
    elif fstype == "cgroup":
        _mount_cgroup_v1(rootfs, destination, options, cgroup_mounts, cgroupns)
    else:
        if fstype is None:
            raise InvalidParameter(f"mount {destination}: no type given")
        host_path = create_destination(rootfs, destination, is_dir=True)
        flags = options.flags
        data = options.data
        if fstype == "cgroup2":
            _mount_cgroup2(rootfs, destination, options, cgroup_mounts)
            return
        fd = open_target(rootfs, host_path)
        try:
            _mount_fd(source, fd, fstype, flags, data, destination)
        finally:
            os.close(fd)
        _set_propagation(rootfs, host_path, destination, options)


def _bind(rootfs: str, bundle: str, source: str | None, destination: str,
          options: MountOptions) -> None:
    if not source:
        raise InvalidParameter(f"bind mount {destination}: no source given")
    if not source.startswith("/"):
        source = os.path.join(bundle, source)
    try:
        is_dir = os.path.isdir(source)
        os.stat(source)
    except OSError:
        raise InvalidParameter(f"bind mount source {source} does not exist") from None
    host_path = create_destination(rootfs, destination, is_dir=is_dir)
    fd = open_target(rootfs, host_path)
    try:
        _mount_fd(source, fd, None, libc.MS_BIND | (options.flags & libc.MS_REC), None,
                  destination)
    finally:
        os.close(fd)
    extra = options.flags & ~(libc.MS_BIND | libc.MS_REC | libc.MS_REMOUNT)
    if extra:
        # Flags on a bind mount only take effect through a remount.
        _remount(rootfs, host_path, destination, libc.MS_BIND | libc.MS_REMOUNT | extra)
    _set_propagation(rootfs, host_path, destination, options)


def _remount(rootfs: str, host_path: str, destination: str, flags: int) -> None:
    # A handle opened before the mount points below it: open the new top.
    fd = open_target(rootfs, host_path)
    try:
        _mount_fd(None, fd, None, flags, None, destination)
    finally:
        os.close(fd)


def _set_propagation(rootfs: str, host_path: str, destination: str,
                     options: MountOptions) -> None:
    for propagation in options.propagation:
        _remount(rootfs, host_path, destination, propagation)


def _mount_cgroup_v1(rootfs: str, destination: str, options: MountOptions,
                     cgroup_mounts: list[tuple[str, str]], cgroupns: bool) -> None:
    """A tmpfs holding the container's own cgroup of each hierarchy, as runc shows them.

    Without a cgroup namespace each /sys/fs/cgroup/<hierarchy> is a read-only
    bind of the container's folder; inside one, a fresh cgroup mount, whose
    root the namespace makes that folder. `cgroup_mounts` pairs each
    hierarchy's name with the container's folder in it; a cgroup2-only host
    gets a cgroup2 bind instead.
    """
    if len(cgroup_mounts) == 1 and cgroup_mounts[0][0] == "":
        _mount_cgroup2(rootfs, destination, options, cgroup_mounts)
        return
    host_path = create_destination(rootfs, destination, is_dir=True)
    fd = open_target(rootfs, host_path)
    try:
        _mount_fd("tmpfs", fd, "tmpfs", options.flags & ~libc.MS_RDONLY,
                  "mode=755", destination)
    finally:
        os.close(fd)
    sub = MountOptions(["rbind", *(o for o in _option_names(options))])
    for name, cgroup_dir in cgroup_mounts:
        if cgroupns:
            _mount_cgroup_in_namespace(rootfs, f"{destination}/{name}", name, options)
        else:
            _bind(rootfs, "/", cgroup_dir, f"{destination}/{name}", sub)
    # runc leaves the folder of hierarchies read-only to all (0555): without
    # CAP_DAC_OVERRIDE even the container's root cannot add to it.
    os.chmod(host_path, 0o555)


def _mount_cgroup_in_namespace(rootfs: str, destination: str, name: str,
                               options: MountOptions) -> None:
    # runc's source and options: named hierarchies go by their bare name.
    source, data = ("systemd", "name=systemd") if name == "systemd" else ("cgroup", name)
    host_path = create_destination(rootfs, destination, is_dir=True)
    fd = open_target(rootfs, host_path)
    try:
        _mount_fd(source, fd, "cgroup", libc.MS_NOEXEC | libc.MS_NOSUID | libc.MS_NODEV
                  | (options.flags & libc.MS_RDONLY), data, destination)
    finally:
        os.close(fd)


def _mount_cgroup2(rootfs: str, destination: str, options: MountOptions,
                   cgroup_mounts: list[tuple[str, str]]) -> None:
    unified = dict(cgroup_mounts).get("")
    if unified is None:
        raise InvalidParameter(f"mount {destination}: this host has no cgroup2 hierarchy")
    _bind(rootfs, "/", unified, destination,
          MountOptions(["rbind", *(o for o in _option_names(options))]))


def _option_names(options: MountOptions) -> list[str]:
    names = []
    for name, bit in (("ro", libc.MS_RDONLY), ("nosuid", libc.MS_NOSUID),
                      ("nodev", libc.MS_NODEV), ("noexec", libc.MS_NOEXEC),
                      ("relatime", libc.MS_RELATIME)):
        if options.flags & bit:
            names.append(name)
    return names


def create_devices(rootfs: str, devices: list[dict], userns: bool) -> None:
    """The default devices plus linux.devices, then the /dev links and ptmx."""
    wanted = [{"path": f"/dev/{name}", "kind": kind, "major": major, "minor": minor,
               "fileMode": 0o666, "uid": 0, "gid": 0}
              for name, kind, major, minor in DEFAULT_DEVICES]
    kinds = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
    for device in devices:
        kind = kinds.get(device.get("type", ""))
        if kind is None:
            raise InvalidParameter(f"device {device.get('path')}: unknown type "
                                   f"{device.get('type')!r}")
        wanted.append({**device, "kind": kind})
    old_umask = os.umask(0)
    try:
        for device in wanted:
            _create_device(rootfs, device, userns)
        dev = resolve_in_root(rootfs, "/dev")
        for target, name in _DEV_LINKS:
            _symlink(target, os.path.join(dev, name))
        if os.path.exists("/proc/kcore"):
            _symlink("/proc/kcore", os.path.join(dev, "core"))
        ptmx = os.path.join(dev, "ptmx")
        if os.path.lexists(ptmx):
            os.unlink(ptmx)
        os.symlink("pts/ptmx", ptmx)
    finally:
        os.umask(old_umask)


def _symlink(target: str, path: str) -> None:
    try:
        os.symlink(target, path)
    except FileExistsError:
        pass


def _create_device(rootfs: str, device: dict, userns: bool) -> None:
    host_path = create_destination(rootfs, os.path.dirname(device["path"]), is_dir=True)
    host_path = os.path.join(host_path, os.path.basename(device["path"]))
    if os.path.lexists(host_path):
        os.unlink(host_path)
    mode = device.get("fileMode", 0o666) & 0o7777
    if device["kind"] == stat.S_IFIFO:
        # A FIFO has no device number and a user namespace may make one: no bind.
        os.mkfifo(host_path, mode)
        os.chown(host_path, device.get("uid", 0), device.get("gid", 0))
        return
    if userns:
        # A user namespace may not mknod: bind the host's node instead.
        os.close(os.open(host_path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
        libc.mount(device["path"], host_path, "bind", libc.MS_BIND)
        return
    os.mknod(host_path, mode | device["kind"], os.makedev(device["major"], device["minor"]))
    os.chown(host_path, device.get("uid", 0), device.get("gid", 0))


def pivot(rootfs: str) -> None:
    """pivot_root(".", ".") then detach the old root, as runc does (no put_old folder)."""
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new_root = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new_root)
        libc.pivot_root(".", ".")
        os.fchdir(old_root)
        # Keep unmount events of the old root from reaching the host.
        libc.mount(None, ".", None, libc.MS_SLAVE | libc.MS_REC)
        libc.umount2(".", libc.MNT_DETACH)
    finally:
        os.close(old_root)
        os.close(new_root)
    os.chdir("/")


def move_root(rootfs: str) -> None:
    """--no-pivot: move the rootfs over / and chroot (for ramdisk roots)."""
    os.chdir(rootfs)
    libc.mount(rootfs, "/", None, libc.MS_MOVE)
    os.chroot(".")
    os.chdir("/")


def chroot_root(rootfs: str) -> None:
    """Enter the rootfs of a container that shares the caller's mount namespace.

    pivot_root would swap the root of every process in that namespace; runc
    chroots in this case too.
    """
    os.chdir(rootfs)
    os.chroot(".")
    os.chdir("/")


def detach_shared_root(rootfs: str) -> None:
    """Undo the rootfs bind (and every mount under it) a shared-namespace init made.

    They live in the caller's namespace and would outlive the container (runc
    leaves them behind).
    """
    try:
        libc.umount2(rootfs, libc.MNT_DETACH)
    except OSError as err:
        if err.errno != errno.EINVAL:  # not a mount point: nothing was mounted
            raise


def readonly_path(path: str) -> None:
    try:
        libc.mount(path, path, None, libc.MS_BIND | libc.MS_REC)
    except FileNotFoundError:
        return
    flags = _locked_flags(path)
    libc.mount(None, path, None, libc.MS_BIND | libc.MS_REMOUNT | libc.MS_RDONLY | libc.MS_REC
               | flags)


def _locked_flags(path: str) -> int:
    # A remount must repeat flags the kernel locked (from a user namespace),
    # or it fails with EPERM: carry over what statvfs reports.
    st = os.statvfs(path)
    flags = 0
    for vfs_bit, ms_bit in ((os.ST_NOSUID, libc.MS_NOSUID), (os.ST_NODEV, libc.MS_NODEV),
                            (os.ST_NOEXEC, libc.MS_NOEXEC), (os.ST_NOATIME, libc.MS_NOATIME),
                            (os.ST_NODIRATIME, libc.MS_NODIRATIME),
                            (os.ST_RELATIME, libc.MS_RELATIME)):
        if st.f_flag & vfs_bit:
            flags |= ms_bit
    return flags


def mask_path(path: str) -> None:
    try:
        is_dir = os.path.isdir(path) and not os.path.islink(path)
        if is_dir:
            libc.mount("tmpfs", path, "tmpfs", libc.MS_RDONLY)
        else:
            libc.mount("/dev/null", path, None, libc.MS_BIND)
    except FileNotFoundError:
        pass


def readonly_root() -> None:
    libc.mount(None, "/", None, libc.MS_BIND | libc.MS_REMOUNT | libc.MS_RDONLY
               | _locked_flags("/"))


def write_sysctls(sysctl: dict[str, str]) -> None:
    for key, value in sysctl.items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as err:
            raise OSError(err.errno, f"sysctl {key}={value}: {os.strerror(err.errno)}") from None
