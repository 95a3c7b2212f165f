"""`network ls` and `network prune` filters, as dockerd's (daemon/network/filter.go)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from moorage.daemon.images.filters import timestamp
from moorage.errors import InvalidParameter
from moorage.model.networks import PREDEFINED, NetworkRecord

_LIST_KEYS = ("dangling", "driver", "id", "label", "name", "scope", "type")
_PRUNE_KEYS = ("label", "label!", "until")


@dataclass(frozen=True, slots=True)
class NetworkFilters:
    values: Mapping[str, tuple[str, ...]]

    @classmethod
    def parse(cls, filters: Mapping[str, Sequence[str]], prune: bool = False) \
            -> NetworkFilters:
        allowed = _PRUNE_KEYS if prune else _LIST_KEYS
        for key in filters:
            if key not in allowed:
                raise InvalidParameter(f"invalid filter '{key}'")
        values = {k: tuple(v) for k, v in filters.items() if v}
        for value in values.get("type", ()):
            if value not in ("custom", "builtin"):
                raise InvalidParameter(f"invalid filter: 'type'='{value}'")
        for value in values.get("dangling", ()):
            if value.lower() not in ("true", "false", "1", "0"):
                raise InvalidParameter(f"invalid filter 'dangling={value}'")
        return cls(values)

    def matches(self, network: NetworkRecord, in_use: bool) -> bool:
        v = self.values
        checks = (
            ("driver", lambda x: network.driver == x),
            ("id", lambda x: x in network.id),
            ("name", lambda x: x in network.name),
            ("scope", lambda x: x == "local"),
            ("type", lambda x: (network.name in PREDEFINED) == (x == "builtin")),
            ("dangling", lambda x: (x.lower() in ("true", "1"))
             == (not in_use and network.name not in PREDEFINED)),
            ("label", lambda x: _label(network.labels, x)),
        )
        for key, check in checks:
            if key in v and not any(check(x) for x in v[key]):
                return False
        if "label!" in v and any(_label(network.labels, x) for x in v["label!"]):
            return False
        return all(network.created / 1e9 < timestamp(x) for x in v.get("until", ()))


def _label(labels: Mapping[str, str], wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)
