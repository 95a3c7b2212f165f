"""The codec of the wire models (moorage.model): Docker's PascalCase JSON to and from
frozen dataclasses.

A field's `wire` metadata (moorage.model.fields.w) names its JSON key; decode() checks every value's
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
from moorage.model.fields import to_wire

T = TypeVar("T")


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


_INT64 = (-(1 << 63), (1 << 63) - 1)


def _go_type(tp: Any) -> str:
    """The Go type dockerd decodes into, as encoding/json's errors print it."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _go_type(next(a for a in typing.get_args(tp) if a is not type(None)))
    if origin is tuple:
        return "[]" + _go_type(typing.get_args(tp)[0])
    if origin is dict:
        key, item = typing.get_args(tp)
        pointer = "*" if typing.get_origin(item) in (typing.Union, types.UnionType) else ""
        return f"map[{_go_type(key)}]{pointer}{_go_type(item)}"
    if dataclasses.is_dataclass(tp):
        return f"{getattr(tp, 'GO_PACKAGE', 'container')}.{tp.__name__}"
    return {str: "string", int: "int64", bool: "bool", float: "float64"}.get(
        tp, "interface {}")


def _type_error(where: str, expected: Any, value: Any) -> InvalidParameter:
    """encoding/json's UnmarshalTypeError (Go 1.16, as dockerd 20.10 prints it):
    `where` is "Struct.Field.Path", the innermost struct first."""
    got = {str: "string", bool: "bool", list: "array", dict: "object"}.get(type(value))
    if got is None:  # a number: Go names it with its literal when it does not fit
        got = f"number {value}" if expected is int else "number"
    return InvalidParameter(f"json: cannot unmarshal {got} into Go struct field {where} "
                            f"of type {_go_type(expected)}")


def _value(tp: Any, value: Any, where: str, strslice: bool = False) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _value(inner[0], value, where, strslice)
    if value is None:
        return None
    if origin is tuple:
        item = typing.get_args(tp)[0]
        if strslice:
            # StrSlice.UnmarshalJSON falls back to a string: its errors name `string`.
            if isinstance(value, str):
                return (value,)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise _type_error(where, str, value)
        if not isinstance(value, list):
            raise _type_error(where, tp, value)
        return tuple(_value(item, v, where) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise _type_error(where, tp, value)
        _, item = typing.get_args(tp)
        return {str(k): _value(item, v, where) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _type_error(where, tp, value)
        path = where.partition(".")[2]
        return decode(tp, value, path, struct=tp.__name__)  # type: ignore[arg-type]
    if tp is Any:
        return value
    if tp is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool) \
            and not _INT64[0] <= value <= _INT64[1]:
        raise _type_error(where, tp, value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise _type_error(where, tp, value)
    return value


def decode(cls: type[T], data: dict, path: str = "", *, struct: str = "") -> T:
    """`data` as a `cls`; InvalidParameter naming "struct.path.Field" for a wrong type.
    `path` is the field path of `data` in the request body (Go's UnmarshalTypeError.Field)
    and `struct` the Go struct that holds it (the class name by default)."""
    hints = _hints(cls)
    kwargs = {}
    struct = struct or cls.__name__  # type: ignore[attr-defined]
    # Go's encoding/json matches a field's name exactly or else case-insensitively
    # (docker-py sends exec's "detachKeys" for "DetachKeys").
    folded = {k.lower(): k for k in data}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = f.metadata["wire"]
        key = name if name in data else folded.get(name.lower(), name)
        if key in data and data[key] is not None:
            field_path = f"{path}.{name}" if path else name
            kwargs[f.name] = _value(hints[f.name], data[key], f"{struct}.{field_path}",
                                    f.metadata.get("strslice", False))
    return cls(**kwargs)


def decode_member(cls: type[T], data: dict, key: str, *, struct: str) -> T | None:
    """`data[key]` as a `cls`, None when absent or null: one member of a body decoded on
    its own, a wrong type named as Go names it inside `struct`."""
    return _value(cls, data.get(key), f"{struct}.{key}")


# The model knows its wire names: the daemon encodes with the same function.
encode = to_wire
