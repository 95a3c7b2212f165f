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
