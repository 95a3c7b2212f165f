"""Container configuration as clients send it and the engine keeps it (Engine API v1.41+
ContainerConfig, HostConfig, Mount; ExecConfig), and inspect's mount points."""

# w() returns dataclasses.field(...) with the JSON key; ruff cannot see through it.
# ruff: noqa: RUF009

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moorage.model.fields import w


@dataclass(frozen=True, slots=True)
class ContainerConfig:
    hostname: str = w("Hostname", "")
    domainname: str = w("Domainname", "")
    user: str = w("User", "")
    attach_stdin: bool = w("AttachStdin", False)
    attach_stdout: bool = w("AttachStdout", False)
    attach_stderr: bool = w("AttachStderr", False)
    exposed_ports: dict[str, Any] | None = w("ExposedPorts", omitempty=True)
    tty: bool = w("Tty", False)
    open_stdin: bool = w("OpenStdin", False)
    stdin_once: bool = w("StdinOnce", False)
    env: tuple[str, ...] | None = w("Env")
    cmd: tuple[str, ...] | None = w("Cmd", strslice=True)
    healthcheck: dict[str, Any] | None = w("Healthcheck", omitempty=True)
    image: str = w("Image", "")
    volumes: dict[str, Any] | None = w("Volumes")
    working_dir: str = w("WorkingDir", "")
    entrypoint: tuple[str, ...] | None = w("Entrypoint", strslice=True)
    on_build: tuple[str, ...] | None = w("OnBuild")
    labels: dict[str, str] = w("Labels", factory=dict)
    stop_signal: str | None = w("StopSignal", omitempty=True)
    stop_timeout: int | None = w("StopTimeout", omitempty=True)


@dataclass(frozen=True, slots=True)
class TmpfsOptions:
    size_bytes: int = w("SizeBytes", 0)
    mode: int = w("Mode", 0)
    options: tuple[tuple[str, ...], ...] | None = w("Options")  # API 1.46


@dataclass(frozen=True, slots=True)
class BindOptions:
    propagation: str = w("Propagation", "")
    non_recursive: bool = w("NonRecursive", False)
    create_mountpoint: bool = w("CreateMountpoint", False)            # API 1.42
    read_only_non_recursive: bool = w("ReadOnlyNonRecursive", False)  # API 1.44
    read_only_force_recursive: bool = w("ReadOnlyForceRecursive", False)


@dataclass(frozen=True, slots=True)
class DriverConfig:
    name: str = w("Name", "")
    options: dict[str, str] | None = w("Options")


@dataclass(frozen=True, slots=True)
class VolumeOptions:
    no_copy: bool = w("NoCopy", False)
    labels: dict[str, str] | None = w("Labels")
    driver_config: DriverConfig | None = w("DriverConfig")
    subpath: str = w("Subpath", "")  # API 1.45


@dataclass(frozen=True, slots=True)
class Mount:
    type: str = w("Type", "")
    source: str = w("Source", "")
    target: str = w("Target", "")
    read_only: bool = w("ReadOnly", False)
    # Docker Desktop's; dockerd on Linux keeps it in HostConfig and ignores it, so do we.
    consistency: str = w("Consistency", "", omitempty=True)
    bind_options: BindOptions | None = w("BindOptions")
    volume_options: VolumeOptions | None = w("VolumeOptions")
    tmpfs_options: TmpfsOptions | None = w("TmpfsOptions")


@dataclass(frozen=True, slots=True)
class Ulimit:
    name: str = w("Name", "")
    soft: int = w("Soft", 0)
    hard: int = w("Hard", 0)


@dataclass(frozen=True, slots=True)
class DeviceMapping:
    """A host device node (or a folder of them) made in the container, with the
    devices cgroup's access to it."""

    path_on_host: str = w("PathOnHost", "")
    path_in_container: str = w("PathInContainer", "")
    cgroup_permissions: str = w("CgroupPermissions", "")


@dataclass(frozen=True, slots=True)
class LogConfig:
    type: str = w("Type", "")
    config: dict[str, str] = w("Config", factory=dict)


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    name: str = w("Name", "no")
    maximum_retry_count: int = w("MaximumRetryCount", 0)


@dataclass(frozen=True, slots=True)
class HostConfig:
    binds: tuple[str, ...] | None = w("Binds")
    container_id_file: str = w("ContainerIDFile", "")
    log_config: LogConfig = w("LogConfig", factory=LogConfig)
    network_mode: str = w("NetworkMode", "")
    port_bindings: dict[str, Any] | None = w("PortBindings", omitempty=True)
    publish_all_ports: bool = w("PublishAllPorts", False)
    port_bindings: dict[str, Any] | None = w("PortBindings", omitempty=True)
    publish_all_ports: bool = w("PublishAllPorts", False)
    restart_policy: RestartPolicy = w("RestartPolicy", factory=RestartPolicy)
    auto_remove: bool = w("AutoRemove", False)
    volume_driver: str = w("VolumeDriver", "")
    volumes_from: tuple[str, ...] | None = w("VolumesFrom")
    cap_add: tuple[str, ...] | None = w("CapAdd", strslice=True)
    cap_drop: tuple[str, ...] | None = w("CapDrop", strslice=True)
    dns: tuple[str, ...] = w("Dns", ())
    dns_options: tuple[str, ...] = w("DnsOptions", ())
    dns_search: tuple[str, ...] = w("DnsSearch", ())
    extra_hosts: tuple[str, ...] | None = w("ExtraHosts")
    group_add: tuple[str, ...] | None = w("GroupAdd")
    ipc_mode: str = w("IpcMode", "")
    oom_score_adj: int = w("OomScoreAdj", 0)
    pid_mode: str = w("PidMode", "")
    privileged: bool = w("Privileged", False)
    readonly_rootfs: bool = w("ReadonlyRootfs", False)
    security_opt: tuple[str, ...] | None = w("SecurityOpt")
    tmpfs: dict[str, str] | None = w("Tmpfs")
    uts_mode: str = w("UTSMode", "")
    cgroupns_mode: str = w("CgroupnsMode", "")  # "host" or "private"; API 1.41
    cgroup_parent: str = w("CgroupParent", "")  # cgroupfs: the container's cgroup's parent
    shm_size: int = w("ShmSize", 0)
    sysctls: dict[str, str] | None = w("Sysctls", omitempty=True)
    runtime: str = w("Runtime", "")
    cpu_shares: int = w("CpuShares", 0)
    memory: int = w("Memory", 0)
    nano_cpus: int = w("NanoCpus", 0)
    cpu_period: int = w("CpuPeriod", 0)
    cpu_quota: int = w("CpuQuota", 0)
    cpuset_cpus: str = w("CpusetCpus", "")
    cpuset_mems: str = w("CpusetMems", "")
    memory_reservation: int = w("MemoryReservation", 0)
    memory_swap: int = w("MemorySwap", 0)
    oom_kill_disable: bool | None = w("OomKillDisable")
    pids_limit: int | None = w("PidsLimit")
    ulimits: tuple[Ulimit, ...] | None = w("Ulimits")
    mounts: tuple[Mount, ...] | None = w("Mounts", omitempty=True)
    devices: tuple[DeviceMapping, ...] | None = w("Devices", ())
    device_cgroup_rules: tuple[str, ...] | None = w("DeviceCgroupRules")
    init: bool | None = w("Init", omitempty=True)
    console_size: tuple[int, ...] | None = w("ConsoleSize")  # [height, width], API 1.42
    # Set at create from the daemon's defaults unless privileged (moby daemon/create.go).
    masked_paths: tuple[str, ...] | None = w("MaskedPaths")
    readonly_paths: tuple[str, ...] | None = w("ReadonlyPaths")


@dataclass(frozen=True, slots=True)
class MountPoint:
    """A mount as inspect's `Mounts` shows it; `name` and `driver` for volumes only."""

    type: str = w("Type")
    source: str = w("Source")
    destination: str = w("Destination")
    mode: str = w("Mode", "")
    rw: bool = w("RW", True)
    propagation: str = w("Propagation", "")
    name: str = w("Name", "", omitempty=True)
    driver: str = w("Driver", "", omitempty=True)


@dataclass(frozen=True, slots=True)
class ExecConfig:
    """POST /containers/{id}/exec."""

    attach_stdin: bool = w("AttachStdin", False)
    attach_stdout: bool = w("AttachStdout", False)
    attach_stderr: bool = w("AttachStderr", False)
    detach_keys: str = w("DetachKeys", "")
    tty: bool = w("Tty", False)
    env: tuple[str, ...] | None = w("Env")
    cmd: tuple[str, ...] | None = w("Cmd")
    privileged: bool = w("Privileged", False)
    user: str = w("User", "")
    working_dir: str = w("WorkingDir", "")
    console_size: tuple[int, ...] | None = w("ConsoleSize")
