"""The daemon's records of containers and exec instances.

Times are integer nanoseconds since the epoch (0: never); a container record is
persisted as `to_plain(record)` under SCHEMA_VERSION, and older rows are
upgraded when the store opens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from moorage.model.config import ContainerConfig, ExecConfig, HostConfig, MountPoint

# Version 1: the first record of its own (before it, rows held the API's inspect document).
SCHEMA_VERSION = 1
# Containers the CRI made carry this label (value "k8s.io", containerd's namespace for
# kubelet's objects): the Docker API's lists leave them out, as containerd keeps
# kubelet's containers apart from other clients'.
NAMESPACE_LABEL = "io.moorage.namespace"

# Docker's container states (moby container/state.go StateString).
CREATED, RUNNING, PAUSED, RESTARTING, REMOVING, EXITED, DEAD = (
    "created", "running", "paused", "restarting", "removing", "exited", "dead")
STATUSES = (CREATED, RESTARTING, RUNNING, REMOVING, PAUSED, EXITED, DEAD)


@dataclass(frozen=True, slots=True)
class HealthResult:
    """One run of a container's healthcheck (Docker's HealthcheckResult)."""

    start: int
    end: int
    exit_code: int
    output: str


STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"


@dataclass(frozen=True, slots=True)
class Health:
    status: str = STARTING
    failing_streak: int = 0
    log: tuple[HealthResult, ...] = ()  # the last five results, oldest first


@dataclass(frozen=True, slots=True)
class ContainerState:
    status: str = CREATED
    running: bool = False
    paused: bool = False
    restarting: bool = False
    oom_killed: bool = False
    dead: bool = False
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    started_at: int = 0
    finished_at: int = 0
    health: Health | None = None   # set once a container with a healthcheck starts


@dataclass(frozen=True, slots=True)
class ContainerRecord:
    id: str
    name: str                      # "/name", as Docker keeps it
    created: int
    path: str
    args: tuple[str, ...]
    image: str                     # the image's id
    config: ContainerConfig
    host_config: HostConfig
    mounts: tuple[MountPoint, ...] = ()
    state: ContainerState = field(default_factory=ContainerState)
    resolv_conf_path: str = ""
    hostname_path: str = ""
    hosts_path: str = ""
    log_path: str = ""
    log_format: str = "json-file"  # "cri": kubelet's format at the path kubelet gave
    restart_count: int = 0
    manually_stopped: bool = False  # by a kill or stop of the user's (restart policies)
    shim_pid: int = 0              # the shim serving the running container
    shim_socket: str = ""          # its socket, a new path for every run


@dataclass(slots=True)
class ExecRecord:
    """An exec instance; mutable while its process lives."""

    id: str
    container_id: str
    config: ExecConfig
    created: int
    pid: int = 0
    running: bool = False
    exit_code: int | None = None
    started: bool = False
