"""The state machine of every container: transitions under the container's lock.

Every change of a container's State goes through `transition`, which checks the
move is one Docker makes, saves the record and then tells the waiters (wait
conditions) and the listeners (exec instances, attach rendezvous; events later).
The caller holds the container's lock: a start, a stop's exit, a removal never
interleave on one container.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

from moorage.daemon.containers.registry import Registry
from moorage.errors import InvalidParameter, NotFound, SystemFailure
from moorage.model.records import (
    CREATED,
    EXITED,
    PAUSED,
    REMOVING,
    RESTARTING,
    RUNNING,
    ContainerRecord,
)

# The moves Docker makes (moby container/state.go): a failed start leaves a container
# as it was (created or exited) with its error and code; an exit its restart policy
# allows makes it restarting (Running, no process) until the back-off ends.
_MOVES = {
    CREATED: {CREATED, RUNNING, REMOVING},
    RUNNING: {PAUSED, EXITED, RESTARTING},
    PAUSED: {RUNNING, EXITED, RESTARTING},
    RESTARTING: {RUNNING, EXITED},
    EXITED: {EXITED, RUNNING, REMOVING},
    REMOVING: {CREATED, EXITED},  # back when a removal fails
}
# What a transition tells: "start", "pause", "unpause", "exit", "start-failed", "removed".
Listener = Callable[[str, ContainerRecord, str], None]
CONDITIONS = ("not-running", "next-exit", "removed")


class StateMachine:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiters: dict[str, list[tuple[str, asyncio.Future]]] = {}
        self._listeners: list[Listener] = []

    def lock(self, container_id: str) -> asyncio.Lock:
        return self._locks.setdefault(container_id, asyncio.Lock())

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def current(self, container_id: str) -> ContainerRecord:
        """The record as it is now: NotFound once removed (a waiter on the lock may
        find its container gone)."""
        record = self.registry.find(container_id)
        if record is None:
            raise NotFound(f"No such container: {container_id}")
        return record

    def transition(self, container_id: str, status: str, event: str = "", error: str = "",
                   **changes: object) -> ContainerRecord:
        """Move the container to `status` with the State `changes`; saved, then told."""
        if not self.lock(container_id).locked():
            raise SystemFailure(f"container {container_id}: state changed without its lock")
        record = self.current(container_id)
        if status not in _MOVES.get(record.state.status, ()):
            raise SystemFailure(f"container {container_id}: no transition from "
                           f"{record.state.status} to {status}")
        state = replace(record.state, status=status,
                        running=status in (RUNNING, PAUSED, RESTARTING),
                        paused=status == PAUSED, restarting=status == RESTARTING, **changes)
        updated = replace(record, state=state)
        self.registry.put(updated, even_unsaved=event == "exit")
        if event:
            self._tell(event, updated, error)
        return updated

    def removed(self, record: ContainerRecord) -> None:
        """The record is gone: waiters end, the lock is forgotten."""
        self._tell("removed", record, "")
        self._waiters.pop(record.id, None)
        self._locks.pop(record.id, None)

    def removal_failed(self, record: ContainerRecord, error: str) -> None:
        """Waiters for "removed" end with `error` (dockerd's SetRemovalError); the others
        wait on, for the removal the next rm makes."""
        kept = []
        for condition, future in self._waiters.get(record.id, []):
            if condition == "removed" and not future.done():
                future.set_result((record.state.exit_code, error))
            else:
                kept.append((condition, future))
        self._waiters[record.id] = kept

    def _tell(self, event: str, record: ContainerRecord, error: str) -> None:
        # A failed start wakes no waiter, as dockerd's: the container never ran, so a
        # next-exit wait goes on (the docker CLI would print "Error waiting for
        # container" beside the start's own error), and AutoRemove's removal ends the rest.
        if event in ("exit", "removed"):
            self._wake(record, event, error)
        for listener in self._listeners:
            listener(event, record, error)

    def _wake(self, record: ContainerRecord, event: str, error: str) -> None:
        """Exits satisfy not-running/next-exit; removal satisfies every condition."""
        kept = []
        for condition, future in self._waiters.get(record.id, []):
            # dockerd clears the error when it removes the container: a "removed" waiter
            # sees the exit code alone (State.SetRemoved).
            done = event == "removed" or condition != "removed"
            if done and not future.done():
                future.set_result((record.state.exit_code,
                                   "" if event == "removed" else error))
            elif not done:
                kept.append((condition, future))
        self._waiters[record.id] = kept

    def wait(self, record: ContainerRecord, condition: str) -> asyncio.Future:
        """Registered at once; gives (StatusCode, Error) when `condition` holds."""
        if condition and condition not in CONDITIONS:
            raise InvalidParameter(f"invalid condition: {condition!r}")
        condition = condition or "not-running"
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        if condition == "not-running" and not record.state.running:
            future.set_result((record.state.exit_code, ""))
        else:
            self._waiters.setdefault(record.id, []).append((condition, future))
        return future

    def cancel_waiters(self) -> None:
        """Pending waits end with the daemon, as their connections do with dockerd's."""
        for waiters in self._waiters.values():
            for _, future in waiters:
                future.cancel()
        self._waiters.clear()

