"""Validation against the Compose Specification's JSON schema (draft-07, the subset it uses).

A small validator of our own: the client imports nothing but the standard library and
PyYAML. Messages are those compose-go prints (santhosh-tekuri/jsonschema v6 wording,
the most specific error of a failed `oneOf`, the path dotted)."""

from __future__ import annotations

import json
import os
import re
from functools import cache
from typing import Any

from moorage.compose.errors import ComposeError

SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "compose-spec.json")

_TYPES = {"object": "object", "array": "array", "string": "string", "boolean": "boolean",
          "null": "null", "number": "number", "integer": "number"}


@cache
def _schema() -> dict[str, Any]:
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        loaded: dict[str, Any] = json.load(f)
    return loaded


@cache
def _pattern(expr: str) -> re.Pattern[str]:
    return re.compile(expr)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(value: Any, wanted: str) -> bool:
    kind = _kind(value)
    if wanted == "integer":
        return kind == "number" and float(value).is_integer()
    return kind == _TYPES.get(wanted, wanted)


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
            return path, f"got {_kind(value)}, want {', '.join(options)}"
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(json.dumps(v) for v in schema["enum"])
        return path, f"value must be one of {allowed}"
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
            for i, item in enumerate(value):
                key = json.dumps(item, sort_keys=True)
                if key in seen:
                    return path, f"items at {seen.index(key)} and {i} are equal"
                seen.append(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return path, f"minimum: got {value}, want {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return path, f"maximum: got {value}, want {schema['maximum']}"
    if isinstance(value, str) and "pattern" in schema \
            and not _pattern(schema["pattern"]).search(value):
        return path, f"'{value}' does not match pattern '{schema['pattern']}'"
    return None


def _check_object(value: dict[str, Any], schema: dict[str, Any], path: list[str]) -> Error | None:
    for name in schema.get("required", ()):
        if name not in value:
            return path, f"missing property '{name}'"
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
        names = ", ".join(f"'{k}'" for k in unknown)
        noun = "property" if len(unknown) == 1 else "properties"
        return path, f"additional {noun} {names} not allowed"
    return None


def _most_specific(failures: list[Error], value: Any) -> Error:
    """The deepest error of the branches (compose-go's getMostSpecificError); when every
    branch refused the value's type, one message naming every accepted type."""
    deepest = max(failures, key=lambda f: len(f[0]))
    shallow = [f for f in failures if f[1].startswith("got ")]
    if len(shallow) == len(failures):
        wants = [f[1].split(", want ", 1)[1] for f in shallow]
        return failures[0][0], f"got {_kind(value)}, want {', '.join(wants)}"
    if len(deepest[0]) == len(failures[0][0]):
        typed = [f for f in failures if not f[1].startswith("got ")]
        return typed[0]
    return deepest


def validate(document: Any, filename: str) -> None:
    found = _check(document, _schema(), [])
    if found:
        path, message = found
        where = ".".join(path)
        raise ComposeError(f"validating {filename}: {where + ' ' if where else ''}{message}")
