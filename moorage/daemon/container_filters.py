"""`GET /containers/json` filters: id, name, label, status, exited, ancestor."""

from __future__ import annotations

import re
from typing import Protocol

from moorage.api.containers.models import Container
from moorage.errors import InvalidParameter

_STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
_KNOWN = ("id", "name", "label", "status", "exited", "ancestor", "before", "since")


class _Lookup(Protocol):
    def get(self, ref: str) -> Container: ...


def matches(container: Container, filters: dict[str, list[str]], lookup: _Lookup) -> bool:
    for key, values in filters.items():
        if key not in _KNOWN:
            raise InvalidParameter(f"Invalid filter '{key}'")
        if values and not any(_one(container, key, v, lookup) for v in values):
            return False
    return True


def _one(container: Container, key: str, value: str, lookup: _Lookup) -> bool:
    if key == "id":
        return container.id.startswith(value)
    if key == "name":
        try:
            return re.search(value, container.name) is not None
        except re.error:
            raise InvalidParameter(f"invalid filter: name={value}") from None
    if key == "label":
        name, sep, wanted = value.partition("=")
        labels = container.config.labels
        return name in labels and (not sep or labels[name] == wanted)
    if key == "status":
        if value not in _STATUSES:
            raise InvalidParameter(f"Invalid filter 'status={value}'")
        return container.state.status == value
    if key == "exited":
        try:
            code = int(value)
        except ValueError:
            raise InvalidParameter(f"invalid filter 'exited={value}'") from None
        return container.state.status == "exited" and container.state.exit_code == code
    if key == "ancestor":
        return value in (container.config.image, container.image) \
            or container.image.removeprefix("sha256:").startswith(value)
    other = lookup.get(value)
    if key == "before":
        return container.created < other.created
    return container.created > other.created
