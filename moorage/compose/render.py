"""`config`'s output: the normalized model in the key order Compose v2 prints."""

from __future__ import annotations

import json
from typing import Any


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def ordered(model: dict[str, Any]) -> dict[str, Any]:
    """Top-level sections in their order, everything below sorted by key (Go struct fields
    and map keys come out sorted in compose-go)."""
    return {k: (v if k == "name" else _sorted(v)) for k, v in model.items()}


def to_yaml(model: dict[str, Any]) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
            # Sequences indented under their key, as yaml.v3 writes them.
            super().increase_indent(flow, False)

    text: str = yaml.dump(ordered(model), Dumper=Dumper, sort_keys=False,
                          default_flow_style=False, allow_unicode=True, width=1 << 16)
    return text


def to_json(model: dict[str, Any]) -> str:
    return json.dumps(ordered(model), indent=2) + "\n"
