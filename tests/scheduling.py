"""How `make test` shares the suite among pytest-xdist workers.

A unit of work is a test module (its module fixtures, such as a moord and a dockerd, are
started once, on one worker), or every module marked `xdist_group(name)` (they share a
worker: the machine tests, whose VMs would crowd each other and whose first run builds
the machine image once). The longest units start first, so the run does not end with
one worker busy and the others idle.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from xdist.scheduler import LoadScopeScheduling

# Seconds a unit took in a serial run on this 2-core machine (the ones over ~20 s);
# the others follow in collection order. Refresh from `--durations` when they drift.
SECONDS: dict[str, float] = {}


class _LongestFirst(OrderedDict):
    """xdist takes units from the front: the front is the longest unit left."""

    def popitem(self, last: bool = True) -> tuple[Any, Any]:
        if last or not self:
            return super().popitem(last)
        scope = max(self, key=lambda s: SECONDS.get(s, 0.0))
        return scope, self.pop(scope)


class ModuleScheduling(LoadScopeScheduling):
    def __init__(self, config: Any, log: Any = None) -> None:
        super().__init__(config, log)
        self.workqueue = _LongestFirst()

    def _split_scope(self, nodeid: str) -> str:
        # xdist's loadgroup appends "@group" to the nodes of marked tests.
        if nodeid.rfind("@") > nodeid.rfind("]"):
            return "group:" + nodeid.rsplit("@", 1)[1]
        return nodeid.split("::", 1)[0]
