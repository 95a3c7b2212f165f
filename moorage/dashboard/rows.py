"""The Engine API's documents as the views show them: pure functions, no I/O."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
HEALTH_WORDS = ("healthy", "unhealthy", "health: starting")


@dataclass(frozen=True)
class Port:
    text: str
    url: str | None  # a published TCP port opens in the browser


@dataclass(frozen=True)
class ContainerRow:
    id: str
    name: str
    image: str
    state: str
    status: str
    health: str
    ports: tuple[Port, ...]
    project: str
    service: str


def ports(entries: list[dict[str, Any]], browser_host: str) -> tuple[Port, ...]:
    """Published ports link to the address they are published on; 0.0.0.0 and :: mean
    "every address", so the link uses the host the browser reached the dashboard by."""
    found = []
    v4 = {e.get("PublicPort") for e in entries if ":" not in (e.get("IP") or "0.0.0.0")}
    for entry in sorted(entries, key=lambda p: (p.get("PublicPort") or 0, p["PrivatePort"])):
        private = f"{entry['PrivatePort']}/{entry.get('Type', 'tcp')}"
        public = entry.get("PublicPort")
        ip = entry.get("IP") or "0.0.0.0"
        if not public:
            if all(p.text != private for p in found):
                found.append(Port(private, None))
            continue
        if ":" in ip and public in v4:
            continue  # the same port on IPv6 too: one link is enough
        shown = f"[{ip}]:{public}->{private}" if ":" in ip else f"{ip}:{public}->{private}"
        host = browser_host if ip in ("0.0.0.0", "::") else ip
        url = f"http://{host}:{public}/" if entry.get("Type", "tcp") == "tcp" else None
        found.append(Port(shown, url))
    return tuple(found)


def health(status: str) -> str:
    for word in HEALTH_WORDS:
        if f"({word})" in status:
            return word.removeprefix("health: ")
    return ""


def container_row(doc: dict[str, Any], browser_host: str) -> ContainerRow:
    labels = doc.get("Labels") or {}
    names = doc.get("Names") or ["/" + doc["Id"][:12]]
    return ContainerRow(
        id=doc["Id"], name=names[0].lstrip("/"), image=doc.get("Image", ""),
        state=doc.get("State", ""), status=doc.get("Status", ""),
        health=health(doc.get("Status", "")), ports=ports(doc.get("Ports") or [], browser_host),
        project=labels.get(PROJECT_LABEL, ""), service=labels.get(SERVICE_LABEL, ""))


def order(project: str, name: str) -> tuple[bool, str, str]:
    """Where a container is listed: compose projects first, by name, then the containers
    of no project (""); by name in each."""
    return project == "", project, name


def listed(rows: list[ContainerRow]) -> list[ContainerRow]:
    return sorted(rows, key=lambda r: order(r.project, r.name))


def grouped(rows: list[ContainerRow]) -> list[tuple[str, list[ContainerRow]]]:
    """Rows by project, in the list's order."""
    groups: dict[str, list[ContainerRow]] = {}
    for row in listed(rows):
        groups.setdefault(row.project, []).append(row)
    return list(groups.items())


def size(n: float | None) -> str:
    """Docker's units.HumanSize: decimal, 3 significant digits."""
    if n is None:
        return "N/A"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.3g}{unit}"
        n /= 1000
    return f"{n:.3g}TB"


def ago(timestamp: float) -> str:
    seconds = max(0, time.time() - timestamp)
    for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= length:
            count = int(seconds // length)
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return "Less than a minute ago"


def cpu_percent(sample: dict[str, Any], previous: dict[str, Any] | None) -> float:
    """The docker CLI's CPU %: the container's share of the host's time since `previous`
    (a one-shot sample has no precpu of its own)."""
    cpu = sample.get("cpu_stats") or {}
    before = (previous or {}).get("cpu_stats") or sample.get("precpu_stats") or {}
    used = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - \
        (before.get("cpu_usage") or {}).get("total_usage", 0)
    system = cpu.get("system_cpu_usage", 0) - before.get("system_cpu_usage", 0)
    cpus = cpu.get("online_cpus") or 1
    return round(used / system * cpus * 100, 2) if used > 0 and system > 0 else 0.0


def memory_bytes(sample: dict[str, Any]) -> int:
    """Usage without the page cache, as `docker stats` shows it."""
    memory = sample.get("memory_stats") or {}
    stats = memory.get("stats") or {}
    cache = stats.get("inactive_file", stats.get("total_inactive_file", 0))
    return max(0, memory.get("usage", 0) - cache)


def io_totals(sample: dict[str, Any]) -> dict[str, int]:
    nets = (sample.get("networks") or {}).values()
    blkio = (sample.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    return {"rx": sum(n.get("rx_bytes", 0) for n in nets),
            "tx": sum(n.get("tx_bytes", 0) for n in nets),
            "read": sum(e.get("value", 0) for e in blkio if e.get("op", "").lower() == "read"),
            "write": sum(e.get("value", 0) for e in blkio
                         if e.get("op", "").lower() == "write")}
