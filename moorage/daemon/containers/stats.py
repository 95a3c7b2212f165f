"""stats: Docker's stats document (moby api/types/stats.go) read from the container's
cgroup, v1 or v2, and its network namespace's interfaces.

A sample is a dict of the document's fields; `document` pairs it with the sample
before it (precpu_stats, preread), as dockerd's collector does.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator

from moorage.daemon.containers.context import Context
from moorage.daemon.containers.spec import cgroup_path
from moorage.errors import MoorError
from moorage.model.records import ContainerRecord
from moorage.runtime.cgroups import new_manager
from moorage.timefmt import format_ns

_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
ZERO_TIME = "0001-01-01T00:00:00Z"
_INTERVAL = 1.0  # seconds between the documents of a stream, as dockerd's collector
# A single document's CPU base: an earlier reading this long before. dockerd's is its
# collector's previous tick, up to a second old; a shorter base answers sooner.
_BASE_SECONDS = 0.25
_BLKIO_KEYS = ("io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive",
               "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive",
               "io_time_recursive", "sectors_recursive")
_NET_NAMES = ("bytes", "packets", "errors", "dropped")


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _flat(text: str | None) -> dict[str, int]:
    """A flat keyed file ("key value" lines) as a dict."""
    found = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        try:
            found[key] = int(value)
        except ValueError:
            continue
    return found


def _system_cpu_ns() -> int:
    """The host's CPU time in nanoseconds, /proc/stat's first line, as dockerd counts it."""
    first = (_read("/proc/stat") or "cpu").splitlines()[0].split()[1:8]
    return sum(int(v) for v in first) * _TICK_NS


def _online_cpus() -> int:
    return len(os.sched_getaffinity(0)) or os.cpu_count() or 1


def empty() -> dict:
    """The document of a container that does not run: zeros, as dockerd's."""
    cpu = {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
           "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
    return {"read": ZERO_TIME, "preread": ZERO_TIME, "pids_stats": {},
            "blkio_stats": {k: None for k in _BLKIO_KEYS}, "num_procs": 0,
            "storage_stats": {}, "cpu_stats": cpu, "precpu_stats": cpu, "memory_stats": {}}


def sample(record: ContainerRecord, pid: int) -> dict:
    """Blocking: one reading of the container's cgroup and interfaces."""
    try:
        paths = new_manager(cgroup_path(record), record.id).paths
    except MoorError:
        paths = {}
    found = _v1(paths) if "memory" in paths else _v2(paths.get("", ""))
    found["read"] = format_ns(time.time_ns())
    found["cpu_stats"]["system_cpu_usage"] = _system_cpu_ns()
    found["cpu_stats"]["online_cpus"] = _online_cpus()
    networks = _networks(pid)
    if networks:
        found["networks"] = networks
    return found


def _v1(paths: dict[str, str]) -> dict:
    memory, cpuacct = paths.get("memory", ""), paths.get("cpuacct", "")
    usage = _flat(_read(cpuacct + "/cpuacct.stat"))
    percpu = [int(v) for v in (_read(cpuacct + "/cpuacct.usage_percpu") or "").split()]
    throttle = _flat(_read(paths.get("cpu", "") + "/cpu.stat"))
    cpu = {"cpu_usage": {"total_usage": int(_read(cpuacct + "/cpuacct.usage") or 0),
                         "percpu_usage": percpu,
                         "usage_in_kernelmode": usage.get("system", 0) * _TICK_NS,
                         "usage_in_usermode": usage.get("user", 0) * _TICK_NS},
           "throttling_data": {"periods": throttle.get("nr_periods", 0),
                               "throttled_periods": throttle.get("nr_throttled", 0),
                               "throttled_time": throttle.get("throttled_time", 0)}}
    limit = int(_read(memory + "/memory.limit_in_bytes") or 0)
    mem = {"usage": int(_read(memory + "/memory.usage_in_bytes") or 0),
           "max_usage": int(_read(memory + "/memory.max_usage_in_bytes") or 0),
           "stats": _flat(_read(memory + "/memory.stat")),
           "limit": min(limit, _host_memory()) if limit else _host_memory()}
    failcnt = int(_read(memory + "/memory.failcnt") or 0)
    if failcnt:
        mem["failcnt"] = failcnt
    blkio = paths.get("blkio", "")
    blk = {key: [] for key in _BLKIO_KEYS}
    blk["io_service_bytes_recursive"] = _blkio_v1(
        _read(blkio + "/blkio.throttle.io_service_bytes_recursive"))
    blk["io_serviced_recursive"] = _blkio_v1(
        _read(blkio + "/blkio.throttle.io_serviced_recursive"))
    return {"pids_stats": _pids(paths.get("pids", "")), "blkio_stats": blk, "num_procs": 0,
            "storage_stats": {}, "cpu_stats": cpu, "memory_stats": mem}


def _blkio_v1(text: str | None) -> list[dict]:
    entries = []
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) != 3 or ":" not in fields[0]:
            continue  # the "Total n" line
        major, _, minor = fields[0].partition(":")
        entries.append({"major": int(major), "minor": int(minor), "op": fields[1],
                        "value": int(fields[2])})
    return entries


def _v2(leaf: str) -> dict:
    cpu_stat = _flat(_read(leaf + "/cpu.stat"))
    cpu = {"cpu_usage": {"total_usage": cpu_stat.get("usage_usec", 0) * 1000,
                         "usage_in_kernelmode": cpu_stat.get("system_usec", 0) * 1000,
                         "usage_in_usermode": cpu_stat.get("user_usec", 0) * 1000},
           "throttling_data": {"periods": cpu_stat.get("nr_periods", 0),
                               "throttled_periods": cpu_stat.get("nr_throttled", 0),
                               "throttled_time": cpu_stat.get("throttled_usec", 0) * 1000}}
    limit_text = (_read(leaf + "/memory.max") or "max").strip()
    mem = {"usage": int(_read(leaf + "/memory.current") or 0),
           "stats": _flat(_read(leaf + "/memory.stat")),
           "limit": _host_memory() if limit_text == "max" else int(limit_text)}
    entries = []
    for line in (_read(leaf + "/io.stat") or "").splitlines():
        device, *fields = line.split()
        major, _, minor = device.partition(":")
        values = dict(f.split("=", 1) for f in fields if "=" in f)
        for op, key in (("read", "rbytes"), ("write", "wbytes")):
            entries.append({"major": int(major), "minor": int(minor), "op": op,
                            "value": int(values.get(key, 0))})
    blk: dict[str, list | None] = {key: None for key in _BLKIO_KEYS}
    blk["io_service_bytes_recursive"] = entries
    return {"pids_stats": _pids(leaf), "blkio_stats": blk, "num_procs": 0,
            "storage_stats": {}, "cpu_stats": cpu, "memory_stats": mem}


def _pids(directory: str) -> dict:
    current = _read(directory + "/pids.current")
    found: dict = {"current": int(current)} if current else {}
    limit = (_read(directory + "/pids.max") or "max").strip()
    if current and limit != "max":
        found["limit"] = int(limit)
    return found


def _host_memory() -> int:
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def _networks(pid: int) -> dict[str, dict[str, int]]:
    """Per interface of the container's network namespace, loopback left out."""
    if pid <= 0:
        return {}
    found = {}
    for line in (_read(f"/proc/{pid}/net/dev") or "").splitlines()[2:]:
        name, _, counters = line.partition(":")
        name = name.strip()
        values = [int(v) for v in counters.split()]
        if name == "lo" or len(values) < 16:
            continue
        entry = {}
        for offset, direction in ((0, "rx"), (8, "tx")):
            for i, field in enumerate(_NET_NAMES):
                entry[f"{direction}_{field}"] = values[offset + i]
        found[name] = entry
    return found


def document(record: ContainerRecord, current: dict, previous: dict | None) -> dict:
    pre = previous or empty()
    return {**current, "preread": pre["read"] if previous else ZERO_TIME,
            "precpu_stats": pre["cpu_stats"], "name": record.name, "id": record.id}


async def container_stats(ctx: Context, ref: str, *, stream: bool,
                          one_shot: bool) -> AsyncIterator[dict]:
    """The documents of `docker stats`: one (with a base for CPU % unless one-shot), or
    one a second while the container runs."""
    record = ctx.registry.get(ref)
    if not record.state.running:
        yield {**empty(), "name": record.name, "id": record.id}
        return
    previous = None
    while True:
        current = await asyncio.to_thread(sample, record, record.state.pid)
        if not stream and not one_shot and previous is None:
            previous = current
            await asyncio.sleep(_BASE_SECONDS)
            continue
        yield document(record, current, previous)
        if not stream:
            return
        previous = current
        await asyncio.sleep(_INTERVAL)
        found = ctx.registry.find(record.id)
        if found is None or not found.state.running:
            return
