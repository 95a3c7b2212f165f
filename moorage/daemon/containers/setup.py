"""A container's files and mounts: validation and defaults at create, rootfs at start.

Create merges the image's config into the container's (moby daemon/create.go,
merge.go) and turns Binds, Mounts and Tmpfs into one list of mount points;
start mounts the overlay rootfs and writes /etc/hostname, /etc/hosts and
/etc/resolv.conf under containers/<id>/.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from dataclasses import dataclass, replace

from moorage import environ
from moorage.daemon.containers import healthcheck, logconfig, restarts, treecopy
from moorage.daemon.containers.spec import MASKED_PATHS, READONLY_PATHS
from moorage.daemon.networks.dns import host_resolv_conf
from moorage.errors import InvalidParameter, SystemFailure
from moorage.fsutil import atomic_write
from moorage.linux import libc
from moorage.model.config import ContainerConfig, HostConfig, MountPoint
from moorage.runtime import cgroups
from moorage.store.snapshots import Mount

NAME_PATTERN = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
DEFAULT_SHM_SIZE = 64 * 1024 * 1024


def validate_name(name: str) -> str:
    """'/name' as Docker stores it; InvalidParameter in Docker's words otherwise."""
    if not NAME_PATTERN.match(name):
        raise InvalidParameter(f"Invalid container name ({name}), only "
                               "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return "/" + name.lstrip("/")


def merge_image_config(config: ContainerConfig, image: dict, container_id: str) -> ContainerConfig:
    """Fill what the request left empty from the image's config (moby's merge())."""
    defaults = image.get("config") or {}
    env = environ.merge(defaults.get("Env") or (), config.env or ())
    cmd = config.cmd
    entrypoint = config.entrypoint
    if entrypoint is None:
        entrypoint = tuple(defaults.get("Entrypoint") or ()) or None
        if not cmd:
            cmd = tuple(defaults.get("Cmd") or ()) or None
    volumes = {**(defaults.get("Volumes") or {}), **(config.volumes or {})}
    return replace(
        config, env=tuple(env) or None, cmd=cmd, entrypoint=entrypoint,
        hostname=config.hostname or container_id[:12],
        working_dir=config.working_dir or defaults.get("WorkingDir") or "",
        user=config.user or defaults.get("User") or "",
        labels={**(defaults.get("Labels") or {}), **config.labels},
        stop_signal=config.stop_signal or defaults.get("StopSignal"),
        volumes=volumes or None, exposed_ports=config.exposed_ports
        or defaults.get("ExposedPorts"),
        healthcheck=healthcheck.merge(config.healthcheck, defaults.get("Healthcheck")))


def validate_config(config: ContainerConfig) -> None:
    """moby's validateContainerConfig."""
    if config.working_dir and not os.path.isabs(config.working_dir):
        raise InvalidParameter(f"the working directory '{config.working_dir}' is invalid, it "
                               "needs to be an absolute path")
    for item in config.env or ():
        if not item.partition("=")[0]:
            raise InvalidParameter(f"invalid environment variable: {item}")


def host_defaults(host: HostConfig, default_runtime: str,
                  log_defaults: tuple[str, dict[str, str]] = ("json-file", {})) -> HostConfig:
    """What dockerd fills in at create (daemon/create.go, adaptContainerSettings), so that
    inspect shows the values the container really gets."""
    swap = host.memory_swap
    if host.memory > 0 and swap == 0:
        swap = host.memory * 2
    return replace(
        host, runtime=host.runtime or default_runtime,
        log_config=replace(host.log_config, **dict(zip(("type", "config"), logconfig.merged(
            host.log_config.type, host.log_config.config or {}, *log_defaults), strict=True))),
        shm_size=host.shm_size or DEFAULT_SHM_SIZE, memory_swap=swap,
        ipc_mode=host.ipc_mode or "private",
        # dockerd's default cgroup namespace: private on a cgroup v2 host, host on v1 and hybrid.
        cgroupns_mode=host.cgroupns_mode or ("private" if cgroups.unified() else "host"),
        network_mode=host.network_mode or "default",
        masked_paths=host.masked_paths if host.masked_paths is not None or host.privileged
        else MASKED_PATHS,
        readonly_paths=host.readonly_paths if host.readonly_paths is not None
        or host.privileged else READONLY_PATHS)


def validate_host_config(host: HostConfig, runtimes: tuple[str, ...]) -> None:
    logconfig.check_driver(host.log_config.type)
    if host.runtime and host.runtime not in runtimes:
        raise InvalidParameter(f"unknown or invalid runtime name: {host.runtime}")
    if host.memory and host.memory < 6 * 1024 * 1024:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    if host.memory_swap and host.memory_swap > 0 and host.memory \
            and host.memory_swap < host.memory:
        raise InvalidParameter("Minimum memoryswap limit should be larger than memory limit, "
                               "see usage")
    if host.nano_cpus and (host.cpu_quota or host.cpu_period):
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Period cannot both be "
                               "set")
    if host.nano_cpus < 0 or host.nano_cpus > (os.cpu_count() or 1) * 1_000_000_000:
        raise InvalidParameter(f"Range of CPUs is from 0.01 to {os.cpu_count()}.00, as there "
                               f"are only {os.cpu_count()} CPUs available")
    if host.shm_size < 0:
        raise InvalidParameter("SHM size can not be less than 0")
    if host.cpu_shares < 0:
        raise InvalidParameter(f"invalid CPU shares ({host.cpu_shares}): value must be a "
                               "positive integer")
    if not -1000 <= host.oom_score_adj <= 1000:
        raise InvalidParameter(f"Invalid value {host.oom_score_adj}, range for oom score adj "
                               "is [-1000, 1000]")
    _check_cpuset(host.cpuset_cpus, "cpus", "CPUs", "cpus")
    _check_cpuset(host.cpuset_mems, "mems", "memory nodes", "mems")
    for name in host.sysctls or {}:
        _check_sysctl(name, host)
    if host.cgroupns_mode not in ("", "host", "private"):
        raise InvalidParameter(f"invalid cgroup namespace mode: {host.cgroupns_mode}")
    refused = restarts.validate(host.restart_policy, host.auto_remove)
    if refused:
        raise InvalidParameter(refused)
    for kind, mode in (("PID", host.pid_mode), ("IPC", host.ipc_mode),
                       ("UTS", host.uts_mode)):
        if mode not in ("", "host", "private", "shareable") and not mode.startswith("container:"):
            raise InvalidParameter(f"Invalid {kind} mode: {mode}")


def _destination(target: str, kind: str) -> None:
    """moby's mount validation of a destination, in its words; `kind` prefixes them."""
    prefix = _config_error(kind) if kind else ""
    if not target and kind:
        raise InvalidParameter(f"{prefix}field Target must not be empty")
    if not os.path.isabs(target):
        raise InvalidParameter(f"{prefix}invalid mount path: '{target}' mount path must be "
                               "absolute")
    if target == "/":
        raise InvalidParameter(f"{prefix}invalid specification: destination can't be '/'")


def _cpu_list(text: str) -> set[int] | None:
    """A cpuset list ("0-2,5") as numbers; None when malformed."""
    found: set[int] = set()
    for part in text.split(","):
        low, sep, high = part.partition("-")
        if not low.isdigit() or (sep and not high.isdigit()):
            return None
        first, last = int(low), int(high) if sep else int(low)
        if last < first:
            return None
        found.update(range(first, last + 1))
    return found


def _check_cpuset(value: str, kind: str, what: str, cgroup_file: str) -> None:
    """moby's IsCpusetCpusAvailable / IsCpusetMemsAvailable, in its words."""
    if not value:
        return
    wanted = _cpu_list(value)
    if wanted is None:
        raise InvalidParameter(f"Invalid value {value} for cpuset {kind}")
    try:
        with open(f"/sys/fs/cgroup/cpuset/cpuset.{cgroup_file}") as f:
            available_text = f.read().strip()
    except OSError:
        try:
            with open(f"/sys/fs/cgroup/cpuset.{cgroup_file}.effective") as f:
                available_text = f.read().strip()
        except OSError:
            return  # no cpuset controller: the runtime reports it
    available = _cpu_list(available_text) or set()
    if not wanted <= available:
        raise InvalidParameter(f"Requested {what} are not available - requested {value}, "
                               f"available: {available_text}")


# Sysctls that live in the container's own namespaces (moby opts.ValidateSysctl).
_IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")


def _check_sysctl(name: str, host: HostConfig) -> None:
    if (name in _IPC_SYSCTLS or name.startswith("fs.mqueue.")) and host.ipc_mode != "host":
        return
    if name.startswith("net.") and host.network_mode != "host":
        return
    if name == "kernel.domainname" and host.uts_mode != "host":
        return
    raise InvalidParameter(f"sysctl '{name}' is not whitelisted")


# moby volume/mounts/linux_parser.go: the words a Binds mode may hold, one of each kind.
_MODE_KINDS = ({"ro", "rw"}, {"z", "Z"}, {"private", "rprivate", "shared", "rshared", "slave",
                                         "rslave"},
               {"nocopy"}, {"consistent", "cached", "delegated"})
_PROPAGATIONS = _MODE_KINDS[2]


def valid_mode(mode: str) -> bool:
    words = mode.split(",") if mode else []
    counts = [sum(1 for w in words if w in kind) for kind in _MODE_KINDS]
    return sum(counts) == len(words) and max(counts, default=0) <= 1


def _bind_spec(bind: str) -> MountPoint:
    """One Binds entry, "src:dst[:mode]": a host path (bind) or a volume name (volume)."""
    parts = bind.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise InvalidParameter(f"invalid volume specification: '{bind}'")
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else ""
    if not valid_mode(mode):
        raise InvalidParameter(f"invalid mode: {mode}")
    options = mode.split(",")
    kind = "bind" if os.path.isabs(source) else "volume"
    try:
        _destination(target, kind)
        if kind == "bind" and "nocopy" in options:
            raise InvalidParameter(f"{_config_error(kind)}field VolumeOptions must not be "
                                   "specified")
        if kind == "volume" and _PROPAGATIONS.intersection(options):
            raise InvalidParameter(f"{_config_error(kind)}field BindOptions must not be "
                                   "specified")
    except InvalidParameter as err:
        raise InvalidParameter(f"invalid volume specification: '{bind}': {err}") from None
    if kind == "volume":
        # dockerd shows "z" for a volume given without a mode.
        return MountPoint("volume", "", target, mode or "z", "ro" not in options, "",
                          name=source, driver="local")
    propagation = next((o for o in options if o in _PROPAGATIONS), "rprivate")
    return MountPoint("bind", source, target, mode, "ro" not in options, propagation)


def _check_bind_source(source: str) -> None:
    if not os.path.exists(source):
        raise InvalidParameter(f"{_config_error('bind')}bind source path does not exist: "
                               f"{source}")


def check_bind_sources(host: HostConfig) -> None:
    """At start, as at create (moby verifyContainerSettings): a Mounts bind whose source
    went away since is refused before anything runs."""
    for mount in host.mounts or ():
        if mount.type == "bind":
            _check_bind_source(mount.source)


def _config_error(kind: str) -> str:
    return f'invalid mount config for type "{kind}": '


def mount_points(host: HostConfig) -> tuple[MountPoint, ...]:
    """Binds ("src:dst[:opts]"), Mounts (bind, volume, tmpfs) and Tmpfs, checked. Volumes
    have their name (empty for an anonymous one) and no source yet: container_volumes
    creates them."""
    points = [_bind_spec(bind) for bind in host.binds or ()]
    for mount in host.mounts or ():
        kind = mount.type
        if kind not in ("bind", "volume", "tmpfs"):
            raise InvalidParameter(f"mount type unknown or not supported yet: \"{kind}\"")
        # moby's validateMountConfig order: the target, then fields of another type.
        _destination(mount.target, kind)
        for field, value, allowed in (("BindOptions", mount.bind_options, "bind"),
                                      ("VolumeOptions", mount.volume_options, "volume"),
                                      ("TmpfsOptions", mount.tmpfs_options, "tmpfs")):
            if value is not None and kind != allowed:
                raise InvalidParameter(f"{_config_error(kind)}field {field} must not be "
                                       "specified")
        if kind == "bind":
            if not os.path.isabs(mount.source or ""):
                raise InvalidParameter(f"{_config_error(kind)}invalid mount path: "
                                       f"'{mount.source}' mount path must be absolute")
            _check_bind_source(mount.source)
            options = mount.bind_options
            if options and (options.non_recursive or options.create_mountpoint
                            or options.read_only_non_recursive
                            or options.read_only_force_recursive):
                raise InvalidParameter(f"{_config_error(kind)}bind-nonrecursive, "
                                       "bind-create-src and bind-recursive are not "
                                       "supported yet")
            propagation = (mount.bind_options.propagation if mount.bind_options else "") \
                or "rprivate"
            if propagation not in _PROPAGATIONS:
                raise InvalidParameter(f"{_config_error(kind)}invalid propagation mode: "
                                       f"{propagation}")
            points.append(MountPoint("bind", mount.source, mount.target, "",
                                     not mount.read_only, propagation))
        elif kind == "volume":
            if mount.volume_options and mount.volume_options.subpath:
                raise InvalidParameter(f"{_config_error(kind)}volume-subpath is not "
                                       "supported yet")
            if not mount.source and mount.read_only:
                raise InvalidParameter(f"{_config_error(kind)}must not set ReadOnly mode when "
                                       "using anonymous volumes")
            points.append(MountPoint("volume", "", mount.target, "z", not mount.read_only, "",
                                     name=mount.source, driver="local"))
        else:
            if mount.source:
                raise InvalidParameter(f"{_config_error(kind)}field Source must not be "
                                       "specified")
            if mount.tmpfs_options and mount.tmpfs_options.options:
                raise InvalidParameter(f"{_config_error(kind)}tmpfs-opt is not supported "
                                       "yet")
            opts = []
            if mount.tmpfs_options and mount.tmpfs_options.size_bytes:
                opts.append(f"size={mount.tmpfs_options.size_bytes}")
            if mount.tmpfs_options and mount.tmpfs_options.mode:
                opts.append(f"mode={mount.tmpfs_options.mode:o}")
            points.append(MountPoint("tmpfs", "", mount.target, ",".join(opts),
                                     not mount.read_only, ""))
    for target, options in (host.tmpfs or {}).items():
        _destination(target, "")
        points.append(MountPoint("tmpfs", "", target, options, True, ""))
    seen = set()
    for point in points:
        if point.destination in seen:
            raise InvalidParameter(f"Duplicate mount point: {point.destination}")
        seen.add(point.destination)
    return tuple(points)


# ---------------------------------------------------------------------- at start


def mount_rootfs(container_dir: str, mounts: list[Mount], *, volatile: bool = False) -> str:
    """Mount the writable layer the snapshotter described (ImageService.prepare_rootfs)
    on the container's rootfs directory; its path.

    `volatile` (a container removed at its exit, as Podman's --rm): overlayfs skips
    every sync of the upper filesystem, the one at the unmount above all, which syncs
    the whole disk the data-root is on (0.3-3 ms of every `run --rm` here, and tens of
    ms while others write to it). Where the kernel has no such option (before 5.10)
    the mount is made without it."""
    rootfs = os.path.join(container_dir, "rootfs")
    os.makedirs(rootfs, exist_ok=True)
    if os.path.ismount(rootfs):
        return rootfs
    try:
        for mount in mounts:
            _mount_layer(mount, rootfs, volatile and mount.type == "overlay")
    except OSError as err:
        raise SystemFailure(f"error mounting the container's rootfs: {err}") from None
    return rootfs


def _mount_layer(mount: Mount, rootfs: str, volatile: bool) -> None:
    workdir = mount.option("workdir")
    if workdir:
        # A volatile mount leaves this mark, and overlayfs refuses every later mount of
        # the layer while it is there: a restart of the container mounts it again in
        # the same boot (a crash ends an AutoRemove container with its layer instead).
        shutil.rmtree(os.path.join(workdir, "work", "incompat"), ignore_errors=True)
    options = ",".join(mount.options)
    if volatile:
        try:
            libc.mount(mount.source, rootfs, mount.type, 0, options + ",volatile")
            return
        except OSError as err:
            if err.errno != errno.EINVAL:
                raise
    libc.mount(mount.source, rootfs, mount.type, 0, options)


def unmount_rootfs(container_dir: str) -> None:
    rootfs = os.path.join(container_dir, "rootfs")
    if os.path.ismount(rootfs):
        libc.umount2(rootfs, libc.MNT_DETACH)


def graph_driver_data(container_dir: str, mounts: list[Mount]) -> dict[str, str]:
    """overlay2's GraphDriver.Data as dockerd shows it: the container's layer paths."""
    overlay = mounts[0]
    return {"LowerDir": overlay.option("lowerdir") or "",
            "MergedDir": os.path.join(container_dir, "rootfs"),
            "UpperDir": overlay.option("upperdir") or "",
            "WorkDir": overlay.option("workdir") or ""}


def tree_size(path: str) -> int:
    """Bytes of the regular files under `path` (links not followed), as `docker ps -s`."""
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except OSError:
                pass  # removed while we walk
    return total


def remove_container_dir(container_dir: str) -> None:
    unmount_rootfs(container_dir)
    shutil.rmtree(container_dir, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class EtcNetwork:
    """What the /etc files say of the container's networks."""

    addresses: tuple[str, ...] = ()  # the container's, first network first
    host_gateway: str = ""           # what --add-host's `host-gateway` stands for
    embedded_dns: bool = False       # on a user-defined network: 127.0.0.11 answers


def write_etc_files(container_dir: str, config: ContainerConfig, host: HostConfig,
                    network: EtcNetwork) -> None:
    """hostname, hosts, resolv.conf, as Docker writes them."""
    _write(os.path.join(container_dir, "hostname"), config.hostname + "\n")
    hosts = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             "fe00::0\tip6-localnet", "ff00::0\tip6-mcastprefix", "ff02::1\tip6-allnodes",
             "ff02::2\tip6-allrouters"]
    for entry in host.extra_hosts or ():
        name, _, address = entry.partition(":")
        if address == "host-gateway":
            address = network.host_gateway
        hosts.append(f"{address}\t{name}")
    names = (f"{config.hostname}.{config.domainname} {config.hostname}"
             if config.domainname else config.hostname)
    hosts += [f"{address}\t{names}" for address in network.addresses[:1]]
    _write(os.path.join(container_dir, "hosts"), "\n".join(hosts) + "\n")
    _write(os.path.join(container_dir, "resolv.conf"),
           _resolv_conf(host, network.embedded_dns))


def rewrite_resolv_conf(container_dir: str, host: HostConfig, embedded_dns: bool) -> None:
    """A running container's resolv.conf anew, in place as dockerd writes it: a
    rename would leave the container's bind mount on the old file."""
    with open(os.path.join(container_dir, "resolv.conf"), "r+") as f:
        f.truncate()
        f.write(_resolv_conf(host, embedded_dns))


def _resolv_conf(host: HostConfig, embedded_dns: bool) -> str:
    """In the order of libnetwork's resolvconf.Build: search, nameservers, options."""
    lines = host_resolv_conf()
    # Docker drops localhost resolvers: they are unreachable from the container.
    servers = ["127.0.0.11"] if embedded_dns else list(host.dns) or [
        line.split()[1] for line in lines
        if line.startswith("nameserver") and len(line.split()) > 1
        and not line.split()[1].startswith(("127.", "::1"))]
    search = list(host.dns_search) or [" ".join(line.split()[1:]) for line in lines
                                       if line.startswith("search")]
    out = [f"search {' '.join(search)}"] if search else []
    out += [f"nameserver {s}" for s in servers]
    options = list(host.dns_options) or [" ".join(line.split()[1:]) for line in lines
                                         if line.startswith("options")]
    # ndots:0 unless the container set its own, as dockerd.
    if embedded_dns and not any(o.startswith("ndots:") for o in " ".join(options).split()):
        options.append("ndots:0")
    out += [f"options {' '.join(options)}"] if options else []
    return "\n".join(out) + "\n"


def _write(path: str, text: str) -> None:
    # No fsync: the /etc files are written anew at every start.
    atomic_write(path, text, sync=False)


def resolve_user(rootfs: str, user: str, group_add: tuple[str, ...]) \
        -> tuple[int, int, tuple[int, ...]]:
    """uid, gid and supplementary groups from the container's /etc/passwd and /etc/group."""
    passwd = _table(rootfs, "/etc/passwd")
    groups = _table(rootfs, "/etc/group")
    name, _, group = (user or "0").partition(":")
    uid, gid = 0, 0
    entry = next((p for p in passwd if p[0] == name or (name.isdigit() and p[2] == name)), None)
    if entry is not None:
        uid, gid = int(entry[2]), int(entry[3])
    elif name.isdigit():
        uid = int(name)
    else:
        raise InvalidParameter(f"unable to find user {name}: no matching entries in passwd file")
    if group:
        gid = _group_id(groups, group)
    # The primary group is also a supplementary one, as with dockerd and runc (`id` shows
    # groups=<gid>).
    extra = [gid] + [int(g[2]) for g in groups if entry is not None and len(g) > 3
                     and entry[0] in g[3].split(",") and int(g[2]) != gid]
    extra += [_group_id(groups, g) for g in group_add]
    return uid, gid, tuple(extra)


def _group_id(groups: list[list[str]], group: str) -> int:
    found = next((g for g in groups if g[0] == group or g[2] == group), None)
    if found is not None:
        return int(found[2])
    if group.isdigit():
        return int(group)
    raise InvalidParameter(f"unable to find group {group}: no matching entries in group file")


def _table(rootfs: str, path: str) -> list[list[str]]:
    """A colon-separated file of the image (treecopy.read_table)."""
    try:
        root = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        return treecopy.read_table(root, path)
    finally:
        os.close(root)
