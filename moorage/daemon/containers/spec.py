"""The OCI config.json of a container, from Docker's Config and HostConfig.

Docker's defaults (moby daemon/pkg/oci/defaults.go, daemon/oci_linux.go): its
capability set, masked and read-only paths, /dev and /dev/shm mounts, the
default seccomp profile (data/seccomp-default.json, filtered as moby's
profiles/seccomp/seccomp_linux.go filters it), per-container /etc files.
"""

from __future__ import annotations

import json
import os
import platform
import re
import stat
from dataclasses import dataclass
from functools import cache

from moorage import environ, signals
from moorage.errors import InvalidParameter
from moorage.model.config import DeviceMapping
from moorage.model.records import ContainerRecord

# Every container's cgroup lives under this parent, as dockerd's under /docker, unless
# its CgroupParent names another (the CRI's pods: kubelet's pod cgroup).
CGROUP_PARENT = "/moor"


def cgroup_path(container: ContainerRecord) -> str:
    """The container's cgroup (cgroupfs: a relative parent is taken from the root)."""
    parent = container.host_config.cgroup_parent or CGROUP_PARENT
    return os.path.join("/", parent, container.id)

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_CAPS = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
                "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
                "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE")
MASKED_PATHS = ("/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
                "/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware")
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
INIT_PATH = "/sbin/docker-init"
# moby's DefaultLinuxSpec: no device but the default nodes and /dev/console, never fuse
# (a privileged container may use every device: WithDevices).
DEFAULT_DEVICE_RULES = (
    {"allow": False, "access": "rwm"},
    *({"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"}
      for major, minor in ((1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1))),
    {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
)
_DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")
_ARCH = {"x86_64": ("amd64", "SCMP_ARCH_X86_64"), "aarch64": ("arm64", "SCMP_ARCH_AARCH64")}
_RLIMITS = {"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
            "nproc", "rss", "rtprio", "rttime", "sigpending", "stack", "as"}


@dataclass(frozen=True, slots=True)
class SpecInputs:
    """What the spec needs beyond the container record."""

    rootfs: str
    container_dir: str
    init_binary: str                  # host path of moor-init when HostConfig.Init
    namespace_pids: dict[str, int]    # "pid"/"ipc" → the pid of a container: target
    user: tuple[int, int, tuple[int, ...]]
    network_namespace: str = ""       # the path of one made ahead; "" for a new one


@cache
def all_capabilities() -> tuple[str, ...]:
    """Every capability the kernel has that the daemon's bounding set keeps: a root
    without some (CAP_SYS_RESOURCE on this kind of host) cannot give them, and the
    runtime's capset would fail (containerd's WithAllCurrentCapabilities)."""
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    with open("/proc/self/status") as f:
        bounding = next((int(line.split()[1], 16) for line in f
                         if line.startswith("CapBnd:")), (1 << (last + 1)) - 1)
    from moorage.runtime.capabilities import NAMES

    return tuple(name for number, name in enumerate(NAMES[: last + 1])
                 if bounding >> number & 1)


def capabilities(cap_add: tuple[str, ...], cap_drop: tuple[str, ...],
                 privileged: bool) -> list[str]:
    """Docker's TweakCapabilities: ALL in add or drop, names with or without CAP_."""
    if privileged:
        return list(all_capabilities())
    known = set(all_capabilities())

    def norm(names: tuple[str, ...], field: str) -> list[str]:
        out = []
        for name in names:
            upper = name.upper()
            full = upper if upper.startswith("CAP_") or upper == "ALL" else "CAP_" + upper
            if full != "ALL" and full not in known:
                # moby: validateCapabilities wraps NormalizeLegacyCapabilities' %q error.
                raise InvalidParameter(f'invalid {field}: unknown capability: "{full}"')
            out.append(full)
        return out

    add, drop = norm(cap_add, "CapAdd"), norm(cap_drop, "CapDrop")
    if "ALL" in add:
        base = list(all_capabilities())
    elif "ALL" in drop:
        base = []
    else:
        base = [c for c in DEFAULT_CAPS if c not in drop]
    return base + [c for c in add if c != "ALL" and c not in base and c not in drop]


def seccomp_profile(profile: dict, caps: list[str]) -> dict:
    """A Docker seccomp profile as linux.seccomp, for this arch and capability set."""
    native, arch = _ARCH.get(platform.machine(), ("", ""))
    out = {k: v for k, v in profile.items() if k not in ("archMap", "syscalls")}
    for entry in profile.get("archMap") or ():
        if entry["architecture"] == arch:
            out["architectures"] = [arch, *(entry.get("subArchitectures") or ())]
    syscalls = []
    for call in profile.get("syscalls") or ():
        excludes, includes = call.get("excludes") or {}, call.get("includes") or {}
        if native in excludes.get("arches", ()) or any(c in caps for c in excludes.get("caps", ())):
            continue
        if includes.get("arches") and native not in includes["arches"]:
            continue
        if any(c not in caps for c in includes.get("caps", ())):
            continue
        if "minKernel" in includes and not _kernel_at_least(includes["minKernel"]):
            continue
        names = call.get("names") or ([call["name"]] if call.get("name") else [])
        syscalls.append({k: v for k, v in {**call, "names": names}.items()
                         if k in ("names", "action", "args", "errnoRet")})
    out["syscalls"] = syscalls
    return out


def _kernel_at_least(version: str) -> bool:
    def parts(text: str) -> tuple[int, ...]:
        return tuple(int("".join(ch for ch in p if ch.isdigit()) or 0)
                     for p in text.split("-")[0].split(".")[:2])

    return parts(platform.release()) >= parts(version)


@cache
def default_seccomp() -> dict:
    with open(os.path.join(_DATA, "seccomp-default.json")) as f:
        return json.load(f)


def security_options(options: tuple[str, ...]) -> tuple[bool, dict | None, bool]:
    """(no_new_privileges, seccomp profile or None for the default, unconfined)."""
    no_new_privs, profile, unconfined = False, None, False
    for option in options:
        key, sep, value = option.partition("=" if "=" in option else ":")
        if key == "no-new-privileges":
            no_new_privs = not sep or value.lower() in ("true", "1", "")
        elif key == "seccomp" and sep:
            if value == "unconfined":
                unconfined = True
            else:
                try:
                    profile = json.loads(value)
                except ValueError as err:
                    raise InvalidParameter(f"Decoding seccomp profile failed: {err}") from None
        elif key in ("apparmor", "label"):
            continue
        else:
            raise InvalidParameter(f"Invalid --security-opt: {option!r}")
    return no_new_privs, profile, unconfined


def environment(container: ContainerRecord) -> list[str]:
    """Docker's CreateDaemonEnvironment: PATH, HOSTNAME, TERM, then the container's."""
    env = [DEFAULT_PATH, f"HOSTNAME={container.config.hostname}"]
    if container.config.tty:
        env.append("TERM=xterm")
    return environ.merge(env, container.config.env or ())


def _mounts(container: ContainerRecord, inputs: SpecInputs) -> list[dict]:
    host = container.host_config
    shm = host.shm_size  # defaults are applied once, at create (setup.host_defaults)
    privileged = host.privileged
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "rw" if privileged else "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "rw" if privileged else "ro"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm}"]},
    ]
    user_targets = {m.destination for m in container.mounts}
    own = []
    for name in ("resolv.conf", "hostname", "hosts"):
        target = f"/etc/{name}"
        if target not in user_targets:
            own.append({"destination": target, "type": "bind",
                        "source": os.path.join(inputs.container_dir, name),
                        "options": ["rbind", "rprivate"]})
    for point in container.mounts:
        if point.type == "tmpfs":
            own.append({"destination": point.destination, "type": "tmpfs", "source": "tmpfs",
                        "options": ["nosuid", "nodev", "noexec",
                                    *(o for o in point.mode.split(",") if o)]})
        else:
            options = ["rbind", point.propagation or "rprivate"]
            options.append("rw" if point.rw else "ro")
            own.append({"destination": point.destination, "type": "bind",
                        "source": point.source, "options": options})
    # Parents before children, as dockerd's sortMounts: a volume on /etc must not hide
    # the /etc/hosts mounted into it.
    mounts += sorted(own, key=lambda m: os.path.normpath(m["destination"]).count("/"))
    if inputs.init_binary:
        mounts.append({"destination": INIT_PATH, "type": "bind", "source": inputs.init_binary,
                       "options": ["bind", "ro"]})
    return mounts


def resources(container: ContainerRecord) -> dict:
    host = container.host_config
    resources: dict = {"devices": [{"allow": True, "access": "rwm"}] if host.privileged
                       else list(DEFAULT_DEVICE_RULES)}
    memory: dict = {}
    if host.memory:
        memory["limit"] = host.memory
        memory["swap"] = host.memory_swap  # 2 x memory unless given; -1 unlimited
    if host.memory_reservation:
        memory["reservation"] = host.memory_reservation
    if memory:
        resources["memory"] = memory
    cpu: dict = {}
    if host.nano_cpus:
        cpu["period"] = 100000
        cpu["quota"] = host.nano_cpus * 100000 // 1_000_000_000
    if host.cpu_quota:
        cpu["quota"] = host.cpu_quota
    if host.cpu_period:
        cpu["period"] = host.cpu_period
    if host.cpu_shares:
        cpu["shares"] = host.cpu_shares
    if host.cpuset_cpus:
        cpu["cpus"] = host.cpuset_cpus
    if host.cpuset_mems:
        cpu["mems"] = host.cpuset_mems
    if cpu:
        resources["cpu"] = cpu
    if host.pids_limit and host.pids_limit > 0:
        resources["pids"] = {"limit": host.pids_limit}
    return resources


_NODE_TYPES = {stat.S_IFCHR: "c", stat.S_IFBLK: "b"}
# What runc's HostDevices leaves out of the host's /dev: the folders a container has its
# own mounts or links for, and those of lxc/lxd and udev (runc#2093).
_HOST_DEV_SKIPPED = frozenset({"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"})


def _node(path: str, inside: str, info: os.stat_result) -> dict:
    return {"path": inside, "type": _NODE_TYPES[stat.S_IFMT(info.st_mode)],
            "major": os.major(info.st_rdev), "minor": os.minor(info.st_rdev),
            "fileMode": stat.S_IMODE(info.st_mode), "uid": info.st_uid, "gid": info.st_gid}


def host_devices(folder: str = "/dev") -> list[dict]:
    """Every device node of the host's /dev for a privileged container, as moby takes
    them from runc's HostDevices: links are not followed, /dev/console is left out (the
    runtime makes the container's own), and so are the folders _HOST_DEV_SKIPPED names."""
    found: list[dict] = []
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except FileNotFoundError:
        return found
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if entry.name not in _HOST_DEV_SKIPPED:
                found += host_devices(entry.path)
            continue
        if entry.name == "console":
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # gone since it was listed
        if stat.S_IFMT(info.st_mode) in _NODE_TYPES:
            found.append(_node(entry.path, entry.path, info))
    return found


@cache
def in_user_namespace() -> bool:
    """Whether the daemon runs in a user namespace (not the initial one's full map): there
    it cannot give a container the host's devices and moby does not try."""
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except FileNotFoundError:
        return False


def devices(mappings: tuple[DeviceMapping, ...],
            privileged: bool = False) -> tuple[list[dict], list[dict]]:
    """linux.devices and their devices-cgroup rules for HostConfig.Devices (moby's
    DevicesFromPath): a node, the target of a link to one, or every node under a folder.
    `privileged` (moby's WithDevices): the host's devices first, then the mappings that
    put a node at another path, and no rules: the cgroup allows every device (resources)
    whatever a mapping asks."""
    nodes: list[dict] = []
    rules: list[dict] = []
    if privileged:
        nodes = [] if in_user_namespace() else host_devices()
        mappings = tuple(m for m in mappings
                         if (m.path_in_container or m.path_on_host) != m.path_on_host)
    for mapping in mappings:
        access = "rwm" if privileged else mapping.cgroup_permissions or "rwm"
        if set(access) - set("rwm"):
            raise InvalidParameter(f"invalid device mode: {access}")
        source = os.path.realpath(mapping.path_on_host)
        target = mapping.path_in_container or mapping.path_on_host
        found = [(source, target)]
        if os.path.isdir(source):
            found = [(os.path.join(top, name), target + os.path.join(top, name)[len(source):])
                     for top, _, names in os.walk(source) for name in sorted(names)]
        for path, inside in found:
            try:
                info = os.stat(path)
            except OSError as err:
                raise InvalidParameter(
                    "error gathering device information while adding custom device "
                    f"\"{mapping.path_on_host}\": {os.strerror(err.errno or 0).lower()}"
                ) from None
            if stat.S_IFMT(info.st_mode) not in _NODE_TYPES:
                if len(found) > 1:
                    continue  # a folder's other files are not asked for
                raise InvalidParameter("error gathering device information while adding "
                                       f"custom device \"{mapping.path_on_host}\": not a "
                                       "device node")
            node = _node(path, inside, info)
            nodes.append(node)
            if not privileged:
                rules.append({"allow": True, "type": node["type"], "major": node["major"],
                              "minor": node["minor"], "access": access})
    return nodes, rules


_CGROUP_RULE = re.compile(r"([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})")


def device_cgroup_rules(rules: tuple[str, ...]) -> list[dict]:
    """HostConfig.DeviceCgroupRules ("c 1:3 rwm", "*" for any number) as linux.resources
    device rules, each allowing (moby's WithDevices)."""
    found = []
    for rule in rules:
        match = _CGROUP_RULE.fullmatch(rule)
        if match is None:
            raise InvalidParameter(f"invalid device cgroup rule format: '{rule}'")
        kind, major, minor, access = match.groups()
        found.append({"allow": True, "type": kind,
                      "major": -1 if major == "*" else int(major),
                      "minor": -1 if minor == "*" else int(minor), "access": access})
    return found


def _namespaces(container: ContainerRecord, inputs: SpecInputs) -> list[dict]:
    host = container.host_config
    namespaces: list[dict] = [{"type": "mount"}]
    if host.network_mode.startswith("container:"):
        namespaces.append({"type": "network",
                           "path": f"/proc/{inputs.namespace_pids['network']}/ns/net"})
    elif inputs.network_namespace:
        namespaces.append({"type": "network", "path": inputs.network_namespace})
    elif host.network_mode != "host":
        namespaces.append({"type": "network"})
    for kind, mode in (("uts", host.uts_mode), ("pid", host.pid_mode), ("ipc", host.ipc_mode)):
        if mode == "host":
            continue
        if mode.startswith("container:"):
            namespaces.append({"type": kind,
                               "path": f"/proc/{inputs.namespace_pids[kind]}/ns/{kind}"})
        else:
            namespaces.append({"type": kind})
    if host.cgroupns_mode == "private":
        namespaces.append({"type": "cgroup"})
    return namespaces


def _rootfs_propagation(container: ContainerRecord) -> str:
    """moby's WithMounts: a shared bind needs a shared rootfs for what the container
    mounts under it to reach the host; a slave bind, a slave one."""
    found = ""
    for point in container.mounts:
        if point.type != "bind":
            continue
        if point.propagation in ("shared", "rshared"):
            return "shared"
        if point.propagation in ("slave", "rslave"):
            found = "rslave"
    return found


def build(container: ContainerRecord, inputs: SpecInputs) -> dict:
    """The runtime-spec config.json for `container` (runtime-spec config.md, config-linux.md)."""
    host = container.host_config
    config = container.config
    caps = capabilities(host.cap_add or (), host.cap_drop or (), host.privileged)
    no_new_privs, profile, unconfined = security_options(host.security_opt or ())
    uid, gid, groups = inputs.user
    args = [container.path, *container.args]
    if inputs.init_binary:
        args = [INIT_PATH, "--", *args]
    process: dict = {
        "terminal": config.tty, "user": {"uid": uid, "gid": gid},
        "args": args, "env": environment(container), "cwd": config.working_dir or "/",
        "capabilities": {k: list(caps) for k in ("bounding", "effective", "permitted")},
        "noNewPrivileges": no_new_privs,
    }
    if groups:
        process["user"]["additionalGids"] = list(groups)
    if host.oom_score_adj:
        process["oomScoreAdj"] = host.oom_score_adj
    rlimits = []
    for ulimit in host.ulimits or ():
        if ulimit.name not in _RLIMITS:
            raise InvalidParameter(f"invalid ulimit type: {ulimit.name}")
        rlimits.append({"type": f"RLIMIT_{ulimit.name.upper()}", "soft": ulimit.soft,
                        "hard": ulimit.hard})
    if rlimits:
        process["rlimits"] = rlimits
    linux: dict = {
        "resources": resources(container),
        "cgroupsPath": cgroup_path(container),
        "namespaces": _namespaces(container, inputs),
        "sysctl": dict(host.sysctls or {}),
    }
    if host.devices or host.privileged:
        linux["devices"], rules = devices(host.devices or (), host.privileged)
        linux["resources"]["devices"] += rules
    if not host.privileged:  # a privileged container's cgroup allows all already
        linux["resources"]["devices"] += device_cgroup_rules(host.device_cgroup_rules or ())
    propagation = _rootfs_propagation(container)
    if propagation:
        linux["rootfsPropagation"] = propagation
    if not host.privileged:
        linux["maskedPaths"] = list(host.masked_paths or ())
        linux["readonlyPaths"] = list(host.readonly_paths or ())
        if not unconfined:
            linux["seccomp"] = seccomp_profile(profile or default_seccomp(), caps)
    shared_uts = host.uts_mode == "host" or host.uts_mode.startswith("container:")
    spec = {
        "ociVersion": "1.0.2-dev", "process": process,
        "root": {"path": inputs.rootfs, "readonly": host.readonly_rootfs},
        # The host's or another container's UTS namespace keeps its own name.
        "hostname": "" if shared_uts else config.hostname,
        "mounts": _mounts(container, inputs), "linux": linux,
    }
    if config.domainname and not shared_uts:
        spec["domainname"] = config.domainname
    return spec


def parse_signal(value: str) -> int:
    """Docker's signal syntax (moorage.signals.parse), or dockerd's error."""
    number = signals.parse(value)
    if number is None:
        raise InvalidParameter(f"Invalid signal: {value}")
    return number


def stop_signal(container: ContainerRecord) -> int:
    """The container's stop signal as a number (StopSignal, else SIGTERM)."""
    return parse_signal(container.config.stop_signal or "SIGTERM")
