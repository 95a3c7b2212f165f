"""Wire models: frozen dataclasses decoded from and encoded to Docker's PascalCase JSON.

A field's `wire` metadata names its JSON key; decode() checks every value's
type against the annotation and raises InvalidParameter naming the field,
the way dockerd's json decoder refuses a wrong type.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import cache
from typing import Any, TypeVar

from moorage.errors import InvalidParameter

T = TypeVar("T")


def w(name: str, default: Any = None, *, factory: Any = None) -> Any:
    """A dataclass field whose JSON key is `name`."""
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={"wire": name})
    return dataclasses.field(default=default, metadata={"wire": name})


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


# Go's names for the types dockerd decodes into, as its json errors print them.
_JSON_NAMES = {str: "string", int: "int64", bool: "bool", float: "float64"}


def _type_error(where: str, expected: Any, value: Any) -> InvalidParameter:
    got = {str: "string", bool: "bool", int: "number", float: "number", list: "array",
           dict: "object"}.get(type(value), type(value).__name__)
    name = _JSON_NAMES.get(expected, getattr(expected, "__name__", str(expected)))
    return InvalidParameter(f"json: cannot unmarshal {got} into Go struct field {where} "
                            f"of type {name}")


def _value(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _value(inner[0], value, where)
    if value is None:
        return None
    if origin is tuple:
        item = typing.get_args(tp)[0]
        if item is str and isinstance(value, str):  # Docker's strslice takes a lone string
            return (value,)
        if not isinstance(value, list):
            raise _type_error(where, list, value)
        return tuple(_value(item, v, where) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise _type_error(where, dict, value)
        _, item = typing.get_args(tp)
        return {str(k): _value(item, v, where) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _type_error(where, tp, value)
        return decode(tp, value, where)  # type: ignore[arg-type]
    if tp is Any:
        return value
    if tp is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise _type_error(where, tp, value)
    return value


def decode(cls: type[T], data: dict, where: str = "") -> T:
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        key = f.metadata["wire"]
        if key in data and data[key] is not None:
            kwargs[f.name] = _value(hints[f.name], data[key],
                                    f"{where}.{key}" if where else key)
    return cls(**kwargs)


def encode(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.metadata["wire"]: encode(getattr(obj, f.name))
                for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [encode(v) for v in obj]
    if isinstance(obj, dict):
        return {k: encode(v) for k, v in obj.items()}
    return obj
