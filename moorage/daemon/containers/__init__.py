"""Containers: one module per concern, wired by service.ContainerService."""

from moorage.daemon.containers.service import ContainerService

__all__ = ["ContainerService"]
