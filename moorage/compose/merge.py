"""The Compose Specification's merge rules, for several -f files, extends and include.

Inputs are service mappings whose mergeable sequences already have their canonical
forms (forms.py): environment, labels and the like as mappings, ports and volumes
in long syntax, so that entries merge by their unique key."""

from __future__ import annotations

from typing import Any

# Sequences the later file replaces instead of extending.
_REPLACED = {"command", "entrypoint", "test", "dns", "dns_search", "tmpfs", "profiles"}


def _port_key(p: dict[str, Any]) -> tuple[Any, ...]:
    return (p.get("host_ip"), p.get("published"), p.get("target"), p.get("protocol", "tcp"))


def _keyed(base: list[Any], over: list[Any], key: Any) -> list[Any]:
    merged: dict[Any, Any] = {}
    for item in [*base, *over]:
        k = key(item)
        merged[k] = merge_mappings(merged[k], item) if isinstance(item, dict) and k in merged \
            else item
    return list(merged.values())


_KEYS: dict[str, Any] = {
    "ports": _port_key,
    "volumes": lambda v: v.get("target") if isinstance(v, dict) else v,
    "secrets": lambda v: (v.get("target") or v.get("source")) if isinstance(v, dict) else v,
    "configs": lambda v: (v.get("target") or v.get("source")) if isinstance(v, dict) else v,
}


def merge_mappings(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for name, value in over.items():
        old = out.get(name)
        if name in _KEYS and isinstance(old, list) and isinstance(value, list):
            out[name] = _keyed(old, value, _KEYS[name])
        elif name in _REPLACED or old is None:
            out[name] = value
        elif isinstance(old, dict) and isinstance(value, dict):
            out[name] = merge_mappings(old, value)
        elif isinstance(old, list) and isinstance(value, list):
            out[name] = old + [v for v in value if v not in old]
        else:
            out[name] = value
    return out


def merge_models(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Two whole files: services merge service by service, the other sections entry-wise."""
    out = dict(base)
    for section, value in over.items():
        if section in ("services", "networks", "volumes", "secrets", "configs") \
                and isinstance(value, dict) and isinstance(out.get(section), dict):
            merged = dict(out[section])
            for name, entry in value.items():
                old = merged.get(name)
                merged[name] = merge_mappings(old, entry) if isinstance(old, dict) \
                    and isinstance(entry, dict) else entry
            out[section] = merged
        else:
            out[section] = value
    return out


class Reset:
    """`!reset`: the override file removes the value."""


class Override:
    """`!override`: the override file's value replaces, bypassing the merge rules."""

    def __init__(self, value: Any) -> None:
        self.value = value


Marker = tuple[str, tuple[str, ...]]


def strip_markers(tree: Any, path: tuple[str, ...] = ()) -> tuple[Any, list[Marker]]:
    """The tree without the tags, and where they were: ("reset"|"override", key path)."""
    found: list[Marker] = []
    if isinstance(tree, Override):
        inner, more = strip_markers(tree.value, path)
        return inner, [("override", path), *more]
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            if isinstance(value, Reset):
                found.append(("reset", (*path, str(key))))
                continue
            out[key], more = strip_markers(value, (*path, str(key)))
            found += more
        return out, found
    if isinstance(tree, list):
        items = []
        for i, value in enumerate(tree):
            item, more = strip_markers(value, (*path, str(i)))
            items.append(item)
            found += more
        return items, found
    return tree, found


def apply_markers(merged: dict[str, Any], loaded: dict[str, Any],
                  markers: list[Marker]) -> dict[str, Any]:
    for kind, path in markers:
        parent: Any = merged
        source: Any = loaded
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
            source = source.get(key) if isinstance(source, dict) else None
        if not isinstance(parent, dict):
            continue
        if kind == "reset":
            parent.pop(path[-1], None)
        elif isinstance(source, dict) and path[-1] in source:
            parent[path[-1]] = source[path[-1]]
    return merged
