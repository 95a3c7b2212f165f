"""Restart policies: whether an exited container comes back, and when.

As moby's restartmanager: each exit the policy allows doubles the back-off (100 ms
first, at most a minute), a run of 10 s or more resets it, and a kill or stop by
the user cancels what is pending until the next `start`. The back-off lives in
memory (a new daemon starts again from 100 ms); the count and the user's stop are
in the record, so they outlive the daemon.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from moorage.daemon.containers.tasks import cancel_all
from moorage.model.config import RestartPolicy
from moorage.model.records import ContainerRecord

_FIRST_DELAY = 0.1
_MAX_DELAY = 60.0
_RESET_AFTER = 10.0  # seconds of running that forget the back-off

Restart = Callable[[str], Awaitable[None]]


def validate(policy: RestartPolicy, auto_remove: bool) -> str:
    """dockerd's refusal of a policy at create (daemon/container.go), "" when valid."""
    if auto_remove and policy.name not in ("", "no"):
        return "can't create 'AutoRemove' container with restart policy"
    if policy.name in ("always", "unless-stopped", "no"):
        if policy.maximum_retry_count:
            return f"maximum retry count cannot be used with restart policy '{policy.name}'"
    elif policy.name == "on-failure":
        if policy.maximum_retry_count < 0:
            return "maximum retry count cannot be negative"
    elif policy.name:
        return f"invalid restart policy '{policy.name}'"
    return ""


def wants_restart(record: ContainerRecord, exit_code: int, manually_stopped: bool) -> bool:
    """The policy's answer for this exit (moby RestartManager.ShouldRestart)."""
    policy = record.host_config.restart_policy
    if policy.name == "always":
        return True
    if policy.name == "unless-stopped":
        return not manually_stopped
    if policy.name == "on-failure":
        limit = policy.maximum_retry_count
        return exit_code != 0 and (limit == 0 or record.restart_count < limit)
    return False


@dataclass
class _Manager:
    delay: float = 0.0
    cancelled: bool = False
    pending: asyncio.Task | None = None


class RestartManagers:
    """One manager per container that has exited under a policy."""

    def __init__(self) -> None:
        self._managers: dict[str, _Manager] = {}
        self._restart: Restart | None = None

    def bind(self, restart: Restart) -> None:
        """`restart(container_id)` brings a restarting container back (the starter's)."""
        self._restart = restart

    def decide(self, record: ContainerRecord, exit_code: int, ran_seconds: float,
               manually_stopped: bool) -> float | None:
        """The back-off before a restart, None when the container stays exited."""
        manager = self._managers.setdefault(record.id, _Manager())
        if manager.cancelled or record.host_config.restart_policy.name in ("", "no"):
            return None
        if ran_seconds >= _RESET_AFTER:
            manager.delay = 0.0
        manager.delay = min(_MAX_DELAY, manager.delay * 2 if manager.delay else _FIRST_DELAY)
        if not wants_restart(record, exit_code, manually_stopped):
            return None
        return manager.delay

    def schedule(self, container_id: str, delay: float) -> None:
        manager = self._managers.setdefault(container_id, _Manager())
        manager.pending = asyncio.get_running_loop().create_task(
            self._after(container_id, delay, manager))

    async def _after(self, container_id: str, delay: float, manager: _Manager) -> None:
        await asyncio.sleep(delay)
        manager.pending = None
        if not manager.cancelled and self._restart is not None:
            await self._restart(container_id)

    def cancel(self, container_id: str) -> bool:
        """The user stopped the container: no restart until its next start. Whether a
        restart was pending (the container is restarting)."""
        manager = self._managers.setdefault(container_id, _Manager())
        manager.cancelled = True
        pending, manager.pending = manager.pending, None
        if pending is not None:
            pending.cancel()
        return pending is not None

    def cancelled(self, container_id: str) -> bool:
        manager = self._managers.get(container_id)
        return manager is not None and manager.cancelled

    def forget(self, container_id: str) -> None:
        """A start by the user (moby ResetRestartManager) or a removal: a fresh manager."""
        self.cancel(container_id)
        self._managers.pop(container_id, None)

    async def stop(self) -> None:
        """The daemon stops: pending restarts are dropped (the next daemon decides)."""
        tasks = [m.pending for m in self._managers.values() if m.pending is not None]
        self._managers.clear()
        await cancel_all(tasks)
