"""stats: docker's resource table from GET /containers/{id}/stats, once or refreshed."""

from __future__ import annotations

import sys

from moorage.cli.flags import BOOL, STR, Spec, flag
from moorage.cli.output import binary_size, human_size, render, write

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from moorage.cli.flags import Options
    from moorage.cli.session import Session
    from moorage.client.api import Client

DEFAULT = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}"
           "\t{{.BlockIO}}\t{{.PIDs}}")
HEADERS = {"ID": "CONTAINER ID", "Container": "CONTAINER", "CPUPerc": "CPU %",
           "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
           "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}


def row(container: str, s: dict[str, Any], trunc: bool) -> dict[str, str]:
    """docker's stats formatter (cli/command/container/stats_helpers.go) for one sample."""
    mem = s.get("memory_stats") or {}
    # cgroup v1 reports total_inactive_file, v2 inactive_file: docker subtracts either.
    inner = mem.get("stats") or {}
    usage = mem.get("usage", 0) - inner.get("total_inactive_file", inner.get("inactive_file", 0))
    limit = mem.get("limit", 0)
    cpu, pre = s.get("cpu_stats") or {}, s.get("precpu_stats") or {}
    delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - \
        (pre.get("cpu_usage") or {}).get("total_usage", 0)
    system = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    cpus = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or
                                         ()) or 1
    cpu_pct = delta / system * cpus * 100 if system > 0 and delta > 0 else 0.0
    nets = (s.get("networks") or {}).values()
    rx, tx = sum(n.get("rx_bytes", 0) for n in nets), sum(n.get("tx_bytes", 0) for n in nets)
    blk = (s.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    read = sum(b.get("value", 0) for b in blk if b.get("op", "").lower() == "read")
    wrote = sum(b.get("value", 0) for b in blk if b.get("op", "").lower() == "write")
    full_id = s.get("id", "")
    return {
        "Container": container, "Name": s.get("name", "").lstrip("/") or "--",
        "ID": full_id[:12] if trunc else full_id,
        "CPUPerc": f"{cpu_pct:.2f}%",
        "MemUsage": f"{binary_size(usage)} / {binary_size(limit)}",
        "MemPerc": f"{usage / limit * 100:.2f}%" if limit else "0.00%",
        "NetIO": f"{human_size(rx)} / {human_size(tx)}",
        "BlockIO": f"{human_size(read)} / {human_size(wrote)}",
        "PIDs": str((s.get("pids_stats") or {}).get("current", 0)),
    }


def _samples(client: Client, names: list[str]) -> list[dict[str, Any]]:
    """One sample per container, fetched in parallel: without one-shot the daemon takes
    two readings a second apart (so CPU % has a base), as `docker stats --no-stream`."""
    from concurrent.futures import ThreadPoolExecutor

    from moorage.client.api import Client as Fresh

    def one(name: str) -> dict[str, Any]:
        worker = Fresh(client.endpoint)  # one connection per thread
        try:
            return worker.get(f"/containers/{name}/stats", {"stream": 0})  # type: ignore[no-any-return]
        finally:
            worker.close()

    with ThreadPoolExecutor(max_workers=min(len(names), 16) or 1) as pool:
        return list(pool.map(one, names))


def stats(session: Session, opts: Options, args: list[str]) -> int:
    client = session.client
    while True:
        names = args or [c["Id"] for c in client.get("/containers/json", {"all": opts.all})]
        rows = [row(name, sample, not opts.no_trunc)
                for name, sample in zip(names, _samples(client, names) if names else [],
                                        strict=True)]
        text = render(rows, opts.format, DEFAULT, HEADERS)
        if opts.no_stream:
            write(text)
            return 0
        # The streaming view redraws the whole table, as docker does on a terminal.
        write("\x1b[2J\x1b[H" + text)
        sys.stdout.flush()


SPECS = {
    "stats": Spec("[OPTIONS] [CONTAINER...]", stats, (
        flag("a|all", BOOL, "Show all containers (default shows just running)"),
        flag("format", STR, "Format output using a custom template"),
        flag("no-stream", BOOL, "Disable streaming stats and only pull the first result"),
        flag("no-trunc", BOOL, "Do not truncate output"))),
}
