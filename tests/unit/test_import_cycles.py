"""No import cycles between the modules of the CLI and of the client (lazy imports count:
a cycle through a function-level import is still two modules that need each other)."""

from __future__ import annotations

import grimp
import pytest


def _cycles(graph: grimp.ImportGraph, package: str) -> list[list[str]]:
    modules = {m for m in graph.modules if m.startswith(package + ".")}
    edges = {m: graph.find_modules_directly_imported_by(m) & modules for m in modules}
    found, done, path, on_path = [], set(), [], set()

    def visit(module: str) -> None:
        path.append(module)
        on_path.add(module)
        for target in sorted(edges[module]):
            if target in on_path:
                found.append([*path[path.index(target):], target])
            elif target not in done:
                visit(target)
        on_path.discard(path.pop())
        done.add(module)

    for module in sorted(modules):
        if module not in done:
            visit(module)
    return found


@pytest.mark.parametrize("package", ["moorage.cli", "moorage.client"])
def test_no_import_cycles(package: str) -> None:
    graph = grimp.build_graph("moorage")
    assert _cycles(graph, package) == []
