"""Records as plain JSON values and back, by the models' own field names or wire names.

For data the engine wrote itself (its database): decoding is lenient about missing
keys (a field's default) and strict about types (ValueError), so a damaged record
is found when it is read, not when it is used. Client input goes through the API's
codec, which checks types and answers in dockerd's words.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def to_plain(obj: Any) -> Any:
    """A dataclass as a dict keyed by its field names, tuples as lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj


def from_plain(cls: type[T], data: Any, *, wire: bool = False) -> T:
    """`data` (keyed by field names, or by wire names with `wire`) as a `cls`."""
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = f.metadata.get("wire", f.name) if wire else f.name
        if key in data and data[key] is not None:
            kwargs[f.name] = _value(hints[f.name], data[key], wire, f"{cls.__name__}.{f.name}")
    return cls(**kwargs)


def _value(tp: Any, value: Any, wire: bool, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _value(inner[0], value, wire, where)
    if value is None:
        return None
    if origin is tuple:
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list")
        item = typing.get_args(tp)[0]
        return tuple(_value(item, v, wire, where) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object")
        item = typing.get_args(tp)[1]
        return {str(k): _value(item, v, wire, where) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_plain(tp, value, wire=wire)  # type: ignore[arg-type]
    if tp is Any:
        return value
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise ValueError(f"{where}: expected {tp.__name__}, got {type(value).__name__}")
    return value
