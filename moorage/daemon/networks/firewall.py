"""The daemon's nftables table, rebuilt whole from the networks' state.

One table of our own (`ip moorage_<default bridge>`, so daemons side by side each have
theirs), replaced in one `nft -f` transaction: declaring the table, deleting it and
declaring it again with its chains is atomic, so there is never a moment without the
rules nor a rule of anyone else touched. The nft command (Debian's nftables) rather
than libnftables through ctypes: the table changes only when a network is created or
removed, a few ms each, and the daemon's venv cannot use Debian's python3-nftables.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from moorage.errors import SystemFailure


@dataclass(frozen=True, slots=True)
class BridgeRules:
    bridge: str
    subnet: str
    internal: bool


@dataclass(frozen=True, slots=True)
class Forward:
    """A published port taken by DNAT: host_ip "" for every address of the host."""

    proto: str
    host_ip: str
    host_port: int
    target: str
    port: int


def table_name(default_bridge: str) -> str:
    return "moorage_" + "".join(c if c.isalnum() else "_" for c in default_bridge)


def render(table: str, bridges: list[BridgeRules], forwards: list[Forward]) -> str:
    nat: list[str] = []
    forward: list[str] = []
    prerouting: list[str] = []
    output: list[str] = []
    raw: list[str] = []
    for f in forwards:
        # "local" takes in 127.0.0.0/8: route_localnet on our bridges lets the kernel
        # send loopback traffic on to the container, masqueraded below.
        match = "fib daddr type local" if not f.host_ip else f"ip daddr {f.host_ip}"
        rule = f"{match} {f.proto} dport {f.host_port} dnat to {f.target}:{f.port}"
        prerouting.append(rule)
        output.append(rule)
    names = ", ".join(_quote(b.bridge) for b in bridges)
    if names:
        # route_localnet must not let a container reach the host's loopback services
        # (CVE-2020-8558): nothing entering our bridges may be for 127.0.0.0/8.
        raw.append(f"iifname {{ {names} }} ip daddr 127.0.0.0/8 drop")
    for rules in bridges:
        name = _quote(rules.bridge)
        if rules.internal:
            # An internal network has no way out and no way in from elsewhere.
            forward.append(f"iifname {name} oifname != {name} drop")
            forward.append(f"oifname {name} iifname != {name} drop")
            continue
        nat.append(f"ip saddr {rules.subnet} oifname != {name} masquerade")
        nat.append(f"ip saddr 127.0.0.0/8 oifname {name} masquerade")
        # Hairpin: a container reaching a published port of its own network through
        # the host's address gets the answer back through the host.
        nat.append(f"ct status dnat iifname {name} oifname {name} masquerade")
        others = [_quote(o.bridge) for o in bridges if o.bridge != rules.bridge]
        if others:
            # Containers on different networks cannot reach each other.
            forward.append(f"iifname {name} oifname {{ {', '.join(others)} }} drop")
    return "\n".join([
        f"table ip {table} {{}}", f"delete table ip {table}", f"table ip {table} {{",
        "  chain guard {", "    type filter hook prerouting priority raw; policy accept;",
        *(f"    {r}" for r in raw), "  }",
        "  chain prerouting {", "    type nat hook prerouting priority dstnat; policy accept;",
        *(f"    {r}" for r in prerouting), "  }",
        "  chain output {", "    type nat hook output priority -100; policy accept;",
        *(f"    {r}" for r in output), "  }",
        "  chain postrouting {", "    type nat hook postrouting priority srcnat; policy accept;",
        *(f"    {r}" for r in nat), "  }",
        "  chain forward {", "    type filter hook forward priority filter; policy accept;",
        *(f"    {r}" for r in forward), "  }", "}", ""])


def apply(table: str, bridges: list[BridgeRules], forwards: list[Forward]) -> None:
    _nft(render(table, bridges, forwards))


def remove(table: str) -> None:
    _nft(f"table ip {table} {{}}\ndelete table ip {table}\n")


def _quote(name: str) -> str:
    return f'"{name}"'


def _nft(script: str) -> None:
    done = subprocess.run(["nft", "-f", "-"], input=script.encode(), capture_output=True,
                          timeout=30)
    if done.returncode:
        raise SystemFailure(f"nftables: {done.stderr.decode(errors='replace').strip()}")
