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


def table_name(default_bridge: str) -> str:
    return "moorage_" + "".join(c if c.isalnum() else "_" for c in default_bridge)


def render(table: str, bridges: list[BridgeRules]) -> str:
    nat: list[str] = []
    forward: list[str] = []
    for rules in bridges:
        name = _quote(rules.bridge)
        if rules.internal:
            # An internal network has no way out and no way in from elsewhere.
            forward.append(f"iifname {name} oifname != {name} drop")
            forward.append(f"oifname {name} iifname != {name} drop")
            continue
        nat.append(f"ip saddr {rules.subnet} oifname != {name} masquerade")
        others = [_quote(o.bridge) for o in bridges if o.bridge != rules.bridge]
        if others:
            # Containers on different networks cannot reach each other.
            forward.append(f"iifname {name} oifname {{ {', '.join(others)} }} drop")
    return "\n".join([
        f"table ip {table} {{}}", f"delete table ip {table}", f"table ip {table} {{",
        "  chain postrouting {", "    type nat hook postrouting priority srcnat; policy accept;",
        *(f"    {r}" for r in nat), "  }",
        "  chain forward {", "    type filter hook forward priority filter; policy accept;",
        *(f"    {r}" for r in forward), "  }", "}", ""])


def apply(table: str, bridges: list[BridgeRules]) -> None:
    _nft(render(table, bridges))


def remove(table: str) -> None:
    _nft(f"table ip {table} {{}}\ndelete table ip {table}\n")


def _quote(name: str) -> str:
    return f'"{name}"'


def _nft(script: str) -> None:
    done = subprocess.run(["nft", "-f", "-"], input=script.encode(), capture_output=True,
                          timeout=30)
    if done.returncode:
        raise SystemFailure(f"nftables: {done.stderr.decode(errors='replace').strip()}")
