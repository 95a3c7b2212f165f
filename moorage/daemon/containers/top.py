"""top: the host's `ps` with the client's arguments, its lines kept for the container's
processes (its cgroup's), as dockerd's daemon/top_unix.go does."""

from __future__ import annotations

import asyncio
import re

from moorage.daemon.containers import events as container_events
from moorage.daemon.containers.context import Context
from moorage.daemon.containers.spec import cgroup_path
from moorage.errors import Conflict, InvalidParameter, MoorError, SystemFailure
from moorage.model.records import ContainerRecord
from moorage.runtime.cgroups import new_manager

_KEY_IS_PID = re.compile(r"\s+([^\s]*)=\s*(PID[^\s]*)")


def container_pids(record: ContainerRecord) -> list[int]:
    """Blocking: the processes in the container's cgroup."""
    try:
        return new_manager(cgroup_path(record), record.id).pids()
    except (MoorError, OSError):
        return []


async def container_top(ctx: Context, ref: str, ps_args: str) -> tuple[list[str],
                                                                        list[list[str]]]:
    record = ctx.registry.get(ref)
    for key, value in _KEY_IS_PID.findall(ps_args or ""):
        if key != "pid":
            raise InvalidParameter(f'specifying "{key}={value}" is not allowed')
    if not record.state.running:
        raise Conflict(f"Container {record.id} is not running")
    pids = await asyncio.to_thread(container_pids, record)
    args = (ps_args or "-ef").split(" ")
    # Some ps options (f) refuse -q: then ps lists everything and the lines are filtered.
    code, output, error = await _ps(*args, "-q" + ",".join(map(str, pids)))
    if code:
        code, output, error = await _ps(*args)
    if code:
        first = error.split(b"\n", 1)[0].decode(errors="replace")
        raise SystemFailure(f"ps: {first or f'exit status {code}'}")
    titles, processes = parse(output.decode(errors="replace"), set(pids))
    container_events.publish(ctx, record, "top")
    return titles, processes


async def _ps(*args: str) -> tuple[int, bytes, bytes]:
    process = await asyncio.create_subprocess_exec(
        "ps", *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    return process.returncode or 0, out, err


def parse(output: str, pids: set[int]) -> tuple[list[str], list[list[str]]]:
    """ps's lines of the processes in `pids`; a thread line ("-" for PID) follows its
    process's."""
    lines = output.split("\n")
    titles = lines[0].split()
    if "PID" not in titles:
        raise SystemFailure("Couldn't find PID field in ps output")
    column = titles.index("PID")
    processes: list[list[str]] = []
    previous_kept = False
    for line in lines[1:]:
        fields = line.split()
        if not fields:
            continue
        if fields[column] == "-":
            if previous_kept:
                processes.append(_row(fields, len(titles)))
            continue
        try:
            pid = int(fields[column])
        except ValueError:
            raise SystemFailure(f"Unexpected pid '{fields[column]}': strconv.Atoi: parsing "
                                f"\"{fields[column]}\": invalid syntax") from None
        previous_kept = pid in pids
        if previous_kept:
            processes.append(_row(fields, len(titles)))
    return titles, processes


def _row(fields: list[str], width: int) -> list[str]:
    """The last column (the command) takes the rest of the line."""
    return [*fields[:width - 1], " ".join(fields[width - 1:])]
