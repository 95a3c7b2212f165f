"""How `make test` shares the suite among pytest-xdist workers.

A unit of work is a test module (its module fixtures, such as a moord and a dockerd, are
started once, on one worker), or a folder named in GROUPS (its modules share a worker:
the machine tests, whose VMs would crowd each other and whose first run builds the
machine image once). xdist's own `xdist_group` mark cannot do it here: it renames the
nodes, which pytest 9 no longer lets a plugin do. The longest units start first, so the
run does not end with one worker busy and the others idle.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from xdist.scheduler import LoadScopeScheduling

# Seconds a unit took in a 4-worker run on this 2-core machine at load 20-30 (the ones
# over ~40 s); the others follow, the most tests first. Refresh from `--junitxml` times
# when they drift: the longest unit bounds the run.
SECONDS: dict[str, float] = {
    "group:machine": 727, "tests/compose/test_up.py[dockerd]": 234,
    "tests/compose/test_up.py[moord]": 234, "tests/engine/test_networks.py": 166,
    "tests/engine/test_build.py": 114, "tests/engine/test_restart_policies.py": 111,
    "tests/cli/test_containers_compare.py": 98, "tests/engine/test_distribution.py": 95,
    "tests/engine/test_container_states.py": 92, "tests/dashboard/test_dashboard.py": 88,
    "tests/engine/test_build_realistic.py": 86, "tests/engine/test_core_races.py": 84,
    "tests/engine/test_streams.py": 84, "tests/compose/test_app.py[dockerd]": 78,
    "tests/compose/test_app.py[moord]": 78, "tests/engine/test_operations.py": 76,
    "tests/engine/test_compat.py": 75, "tests/cli/test_compare.py": 69,
    "tests/cri/test_cri_pods.py": 64, "tests/engine/test_build_buildkit.py": 58,
    "tests/cli/test_images_compare.py": 47, "tests/engine/test_core_lifecycle.py": 47,
    "tests/runtime/test_differential.py": 45,
}

GROUPS = {"tests/machine/": "group:machine"}

# Modules whose only costly fixture is a module-scoped engine parametrized by name: each
# engine's half is a unit of its own (the engine starts once either way).
BY_ENGINE = {"tests/compose/test_up.py", "tests/compose/test_app.py"}
ENGINES = ("moord", "dockerd")


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
        module = nodeid.split("::", 1)[0]
        group = next((g for folder, g in GROUPS.items() if module.startswith(folder)), None)
        if group:
            return group
        if module in BY_ENGINE and nodeid.endswith("]"):
            ids = nodeid[nodeid.index("[") + 1:-1].split("-")
            engine = next((e for e in ENGINES if e in ids), None)
            if engine:
                return f"{module}[{engine}]"
        return module
