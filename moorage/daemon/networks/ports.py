"""Published ports: what -p and -P ask for, the host ports they get, and the listeners
that hold them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from moorage.daemon.networks import proxy
from moorage.errors import InvalidParameter
from moorage.model.networks import PublishedPort as Published


class PortTaken(Exception):
    """dockerd's words for a host port that cannot be had."""

# dockerd's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range is its fallback).
EPHEMERAL = range(32768, 61000)


@dataclass(frozen=True, slots=True)
class Binding:
    """One -p: the container's port and protocol, the host address and port range
    (0, 0 for any free port)."""

    port: int
    proto: str
    host_ip: str
    first: int
    last: int


@dataclass
class ContainerPorts:
    published: list[Published] = field(default_factory=list)
    listeners: list[proxy.Listener] = field(default_factory=list)

    def close(self) -> None:
        for listener in self.listeners:
            listener.close()


def bindings(port_bindings: Mapping[str, object] | None, publish_all: bool,
             exposed: Iterable[str]) -> list[Binding]:
    """HostConfig.PortBindings, and with PublishAllPorts every exposed port not bound."""
    found: list[Binding] = []
    for key, entries in (port_bindings or {}).items():
        port, proto = _port_key(key)
        for entry in entries if isinstance(entries, list) and entries else [{}]:
            entry = entry if isinstance(entry, dict) else {}
            first, last = _host_range(str(entry.get("HostPort") or ""))
            found.append(Binding(port, proto, str(entry.get("HostIp") or ""), first, last))
    if publish_all:
        bound = {(b.port, b.proto) for b in found}
        for key in exposed:
            port, proto = _port_key(key)
            if (port, proto) not in bound:
                found.append(Binding(port, proto, "", 0, 0))
    return found


def _port_key(key: str) -> tuple[int, str]:
    text, _, proto = key.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp"):
        raise InvalidParameter(f"publishing {proto} ports is not supported")
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise InvalidParameter(f"invalid containerPort: {text}")
    return int(text), proto


def _host_range(text: str) -> tuple[int, int]:
    if not text:
        return 0, 0
    first, _, last = text.partition("-")
    if not first.isdigit() or (last and not last.isdigit()):
        raise InvalidParameter(f"invalid hostPort: {text}")
    start, end = int(first), int(last or first)
    if not 0 < start <= end < 65536:
        raise InvalidParameter(f"invalid hostPort: {text}")
    return start, end


def host_addresses(host_ip: str) -> list[str]:
    """Where a binding listens: both families for no address, as dockerd."""
    return ["0.0.0.0", "::"] if host_ip in ("", "0.0.0.0") else [host_ip]


def bind(binding: Binding, target: str, held: set[tuple[str, int]]) \
        -> tuple[list[Published], list[proxy.Listener]]:
    """Listeners for one binding: its port, or the first free one of its range (of
    dockerd's ephemeral range without one). OSError (EADDRINUSE) when none is free;
    nothing is left open then."""
    candidates = range(binding.first, binding.last + 1) if binding.first else EPHEMERAL
    error = ""
    for host_port in candidates:
        shown = binding.host_ip or "0.0.0.0"
        if (binding.proto, host_port) in held:
            error = error or f"Bind for {shown}:{host_port} failed: port is already allocated"
            continue
        listeners: list[proxy.Listener] = []
        address = ""
        try:
            for address in host_addresses(binding.host_ip):
                listeners.append(proxy.listen(address, host_port, binding.proto == "udp",
                                              (target, binding.port)))
        except OSError as err:
            for listener in listeners:
                listener.close()
            family = "6" if ":" in address else "4"
            shown = f"[{address}]" if ":" in address else address
            error = error or (f"Error starting userland proxy: listen {binding.proto}{family} "
                              f"{shown}:{host_port}: bind: {(err.strerror or str(err)).lower()}")
            continue
        return ([Published(binding.port, binding.proto, address, host_port, target)
                 for address in host_addresses(binding.host_ip)], listeners)
    raise PortTaken(error)
