"""Values of container flags shared by create/run and update: sizes and restart policies."""

from __future__ import annotations

from moorage.cli.session import CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_UNITS = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def ram_in_bytes(text: str) -> int:
    """go-units RAMInBytes: "512m", "1.5g", "1024" (binary multiples)."""
    lowered = text.strip().lower().removesuffix("b") if len(text) > 1 else text.lower()
    unit = lowered[-1] if lowered and lowered[-1] in _UNITS else "b"
    number = lowered[:-1] if lowered and lowered[-1] in _UNITS else lowered
    try:
        return int(float(number) * _UNITS[unit])
    except ValueError:
        raise CommandError(f"invalid size: '{text}'", 125, with_help=True) from None


def restart_policy(text: str) -> dict[str, Any]:
    name, _, count = text.partition(":")
    policy: dict[str, Any] = {"Name": "" if name == "no" else name}
    if count:
        policy["MaximumRetryCount"] = int(count)
    return policy
