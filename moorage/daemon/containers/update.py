"""update: a container's resources changed in its record and, while it runs, in its
live cgroup, as dockerd's daemon/update.go (a zero value leaves a setting as it is)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from moorage.daemon.containers import events as container_events
from moorage.daemon.containers import setup, spec
from moorage.daemon.containers.context import Context
from moorage.errors import Conflict, InvalidParameter, MoorError
from moorage.model.config import RestartPolicy
from moorage.model.records import ContainerRecord
from moorage.runtime.cgroups import new_manager

# The body's fields moord applies, and the HostConfig attribute each one sets.
_FIELDS = {"Memory": "memory", "MemorySwap": "memory_swap",
           "MemoryReservation": "memory_reservation", "NanoCpus": "nano_cpus",
           "CpuShares": "cpu_shares", "CpuPeriod": "cpu_period", "CpuQuota": "cpu_quota",
           "CpusetCpus": "cpuset_cpus", "CpusetMems": "cpuset_mems", "PidsLimit": "pids_limit"}


async def container_update(ctx: Context, ref: str, body: dict[str, Any]) -> None:
    """NotFound for a container that is gone; Conflict, InvalidParameter as dockerd."""
    record = ctx.registry.get(ref)
    changes: dict[str, Any] = {}
    for key, value in body.items():
        if key == "RestartPolicy" or not value:
            continue
        if key not in _FIELDS:
            # Accepting a setting moord cannot apply would be ignoring it.
            raise InvalidParameter(f"Cannot update container {record.id}: updating {key} "
                                   "is not supported")
        expected = str if key.startswith("Cpuset") else int
        if not isinstance(value, expected) or isinstance(value, bool):
            raise InvalidParameter(f"json: cannot unmarshal {type(value).__name__} into Go "
                                   f"struct field UpdateConfig.{key}")
        changes[_FIELDS[key]] = value
    policy = body.get("RestartPolicy") or {}
    if policy.get("Name"):
        changes["restart_policy"] = RestartPolicy(policy["Name"],
                                                  int(policy.get("MaximumRetryCount") or 0))
    async with ctx.states.lock(record.id):
        record = ctx.states.current(record.id)
        host = record.host_config
        # dockerd's rule, even for a container without a swap limit (0 or -1).
        if "memory" in changes and "memory_swap" not in changes \
                and changes["memory"] > host.memory_swap:
            raise Conflict(f"Cannot update container {record.id}: Memory limit should "
                                   "be smaller than already set memoryswap limit, update the "
                                   "memoryswap at the same time")
        updated = replace(record, host_config=replace(host, **changes))
        try:
            setup.validate_host_config(updated.host_config,
                                       tuple(r.name for r in ctx.config.runtimes))
        except InvalidParameter as err:
            raise InvalidParameter(f"Cannot update container {record.id}: {err}") from None
        if record.state.running:
            wanted = {k: v for k, v in spec.resources(updated).items() if k != "devices"}
            try:
                await asyncio.to_thread(_apply, record, wanted)
            except MoorError as err:
                raise InvalidParameter(f"Cannot update container {record.id}: {err}") \
                    from None
        ctx.registry.put(updated)
    container_events.publish(ctx, updated, "update")


def _apply(record: ContainerRecord, resources: dict[str, Any]) -> None:
    new_manager(spec.cgroup_path(record), record.id).apply(resources)
