"""The dialogs' text fields as Engine API values (one item a line, as the CLI's flags)."""

from __future__ import annotations

from typing import Any

from aiohttp import web


def lines(value: Any) -> list[str]:
    return [line.strip() for line in str(value or "").splitlines() if line.strip()]


def pairs(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise web.HTTPBadRequest(text=f"invalid key in {item!r}")
        out[key] = value
    return out


def port_bindings(specs: list[str]) -> tuple[dict[str, dict], dict[str, list[dict[str, str]]]]:
    """`-p` syntax: [ip:]host:container[/proto], host:container or container."""
    exposed: dict[str, dict] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in specs:
        body, _, proto = spec.partition("/")
        parts = body.rsplit(":", 2)
        container = parts[-1]
        host = parts[-2] if len(parts) > 1 else ""
        ip = parts[0] if len(parts) > 2 else ""
        if not container.isdigit() or (host and not host.isdigit()):
            raise web.HTTPBadRequest(text=f"invalid port mapping {spec!r}: want "
                                          "[ip:]hostPort:containerPort[/protocol]")
        key = f"{container}/{proto or 'tcp'}"
        exposed[key] = {}
        bindings.setdefault(key, []).append({"HostIp": ip, "HostPort": host})
    return exposed, bindings
