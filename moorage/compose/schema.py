"""Validation against the Compose Specification's JSON schema (draft-07, the subset it uses).

A small validator of our own: the client imports nothing but the standard library and
PyYAML. Messages are those Compose v2 prints (compose-go over gojsonschema: "services.web
Additional property foo is not allowed", "... must be a list", "(root)" for the top)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from functools import cache
from typing import Any

from moorage.compose.errors import ComposeError

SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "compose-spec.json")


@cache
def _schema() -> dict[str, Any]:
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        loaded: dict[str, Any] = json.load(f)
    return loaded


@cache
def _pattern(expr: str) -> re.Pattern[str]:
    return re.compile(expr)


def _kind(value: Any) -> str:
    """gojsonschema's name for a value's type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(value: Any, wanted: str) -> bool:
    kind = _kind(value)
    if wanted == "number":
        return kind in ("number", "integer")
    return kind == wanted


_HUMAN = {"object": "mapping", "array": "list"}


def _human(types: list[str]) -> str:
    """compose-go's humanReadableType: "string or number", "mapping", "list"."""
    names = [_HUMAN.get(t, t) for t in types]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


Error = tuple[list[str], str]


def _check(value: Any, schema: Any, path: list[str]) -> Error | None:
    if schema is True or schema == {}:
        return None
    if schema is False:
        return path, "not allowed"
    ref = schema.get("$ref")
    if ref:
        node: Any = _schema()
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        return _check(value, node, path)
    wanted = schema.get("type")
    if wanted is not None:
        options = wanted if isinstance(wanted, list) else [wanted]
        if not any(_type_ok(value, t) for t in options):
            return path, f"must be a {_human(options)}"
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(json.dumps(v) for v in schema["enum"])
        return path, f"must be one of the following: {allowed}"
    for key in ("oneOf", "anyOf"):
        if key in schema:
            failures = [_check(value, sub, path) for sub in schema[key]]
            if all(failures):
                return _most_specific([f for f in failures if f], value)
    for sub in schema.get("allOf", ()):
        found = _check(value, sub, path)
        if found:
            return found
    if isinstance(value, dict):
        return _check_object(value, schema, path)
    if isinstance(value, list):
        items = schema.get("items")
        for i, item in enumerate(value):
            found = _check(item, items, [*path, str(i)]) if items is not None else None
            if found:
                return found
        if schema.get("uniqueItems"):
            seen: list[str] = []
            for item in value:
                key = json.dumps(item, sort_keys=True)
                if key in seen:
                    return path, "array items must be unique"
                seen.append(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return path, f"must be greater than or equal to {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return path, f"must be less than or equal to {schema['maximum']}"
    if isinstance(value, str) and "pattern" in schema \
            and not _pattern(schema["pattern"]).search(value):
        return path, f"Does not match pattern '{schema['pattern']}'"
    return None


def _check_object(value: dict[str, Any], schema: dict[str, Any], path: list[str]) -> Error | None:
    for name in schema.get("required", ()):
        if name not in value:
            return [*path, name], f"{name} is required"
    props = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    extra = schema.get("additionalProperties", True)
    unknown = []
    for key, item in value.items():
        key = str(key)
        matched = False
        if key in props:
            matched = True
            found = _check(item, props[key], [*path, key])
            if found:
                return found
        for expr, sub in patterns.items():
            if _pattern(expr).search(key):
                matched = True
                found = _check(item, sub, [*path, key])
                if found:
                    return found
        if not matched:
            if extra is False:
                unknown.append(key)
            elif isinstance(extra, dict):
                found = _check(item, extra, [*path, key])
                if found:
                    return found
    if unknown:
        return path, f"Additional property {unknown[0]} is not allowed"
    return None


def _most_specific(failures: list[Error], value: Any) -> Error:
    """compose-go's getMostSpecificError: the deepest error of the branches; when every
    branch refused the value's type at its own level, the first branch's type error
    (gojsonschema's child description)."""
    deepest = max(failures, key=lambda f: len(f[0]))
    if any(len(f[0]) < len(deepest[0]) for f in failures):
        return deepest
    others = [f for f in failures if not f[1].startswith("must be a ")]
    if others:
        return others[0]
    path, message = failures[0]
    expected = message[len("must be a "):].split(" or ")[0].split(", ")[0]
    wanted = {v: k for k, v in _HUMAN.items()}.get(expected, expected)
    return path, f"Invalid type. Expected: {wanted}, given: {_kind(value)}"


def validate(document: Any, where: Callable[[tuple[str, ...]], str]) -> None:
    """Raise Compose v2's message for the first violation, placed by `where` (a key path's
    `file:line`; an unknown key's own line)."""
    found = _check(document, _schema(), [])
    if found:
        path, message = found
        place = path
        unknown = _UNKNOWN.match(message)
        if unknown:
            place = [*path, unknown.group(1)]
        raise ComposeError(f"validating {where(tuple(place))}: {'.'.join(path) or '(root)'} "
                           f"{message}")


_UNKNOWN = re.compile(r"Additional property (.+) is not allowed$")
