"""What the container operations share: the configuration, the services they use,
the records and their state machine."""

from __future__ import annotations

from dataclasses import dataclass

from moorage.daemon.config import DaemonConfig
from moorage.daemon.containers.paths import ContainerPaths
from moorage.daemon.containers.registry import Registry
from moorage.daemon.containers.restarts import RestartManagers
from moorage.daemon.containers.shim_client import Zygote
from moorage.daemon.containers.state import StateMachine
from moorage.daemon.events.bus import EventBus
from moorage.daemon.images.service import ImageService
from moorage.daemon.networks.service import NetworkService
from moorage.daemon.volumes.service import VolumeService


@dataclass(frozen=True, slots=True)
class Context:
    config: DaemonConfig
    images: ImageService
    volumes: VolumeService
    paths: ContainerPaths
    registry: Registry
    states: StateMachine
    zygote: Zygote
    events: EventBus
    restarts: RestartManagers
    networks: NetworkService
