"""Environment lists ("KEY=value" strings) as Docker merges them.

One rule everywhere (image ENV, `docker run -e`, exec, the daemon's defaults): a
later entry replaces an earlier one with the same key and moves to the end.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable


def merge(base: Iterable[str], overrides: Iterable[str]) -> list[str]:
    env = list(base)
    for item in overrides:
        key = item.partition("=")[0]
        env = [e for e in env if e.partition("=")[0] != key]
        env.append(item)
    return env
