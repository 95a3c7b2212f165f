"""Placeholder until the container service lands: an engine with no containers."""

from __future__ import annotations

from moorage.daemon.config import DaemonConfig
from moorage.daemon.images import ImageService


class ContainerService:
    def __init__(self, config: DaemonConfig, images: ImageService) -> None:
        self.config = config
        self.images = images

    async def start(self) -> None:
        """Reconcile with what is on disk and running; called once before serving."""

    async def stop(self) -> None:
        """Release what the service holds; containers keep running (their shims own them)."""

    def counts(self) -> tuple[int, int, int]:
        """(running, paused, stopped)."""
        return 0, 0, 0
