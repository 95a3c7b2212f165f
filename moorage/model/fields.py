"""The wire-name metadata of a configuration model's fields."""

from __future__ import annotations

import dataclasses
from typing import Any


def w(name: str, default: Any = None, *, factory: Any = None, strslice: bool = False,
      omitempty: bool = False) -> Any:
    """A dataclass field whose JSON key is `name`; `strslice` for Docker's StrSlice fields
    (Cmd, Entrypoint, CapAdd, CapDrop), which also take a lone string; `omitempty` as Go's
    tag: left out of the JSON when None or an empty string, list or map."""
    metadata = {"wire": name, "strslice": strslice, "omitempty": omitempty}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def to_wire(obj: Any) -> Any:
    """A configuration model as its JSON document (wire names, omitempty honoured)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        doc = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if not (f.metadata.get("omitempty") and _empty(value)):
                doc[f.metadata["wire"]] = to_wire(value)
        return doc
    if isinstance(obj, tuple):
        return [to_wire(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_wire(v) for k, v in obj.items()}
    return obj


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | tuple | dict) and not value)
