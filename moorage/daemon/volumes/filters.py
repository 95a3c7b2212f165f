"""The ``filters`` of GET /volumes and POST /volumes/prune, as moby's volume service
validates and applies them (volume/service/convert.go filtersToBy)."""

from __future__ import annotations

from collections.abc import Callable

from moorage.errors import InvalidParameter
from moorage.model.volumes import VolumeRecord

Selector = Callable[[VolumeRecord, bool], bool]   # (volume, in use) -> kept

LIST_FILTERS = ("dangling", "driver", "label", "name")
PRUNE_FILTERS = ("label", "label!")
PRUNE_FILTERS_1_42 = ("label", "label!", "all")


def _validate(filters: dict[str, list[str]], accepted: tuple[str, ...]) -> None:
    for key in filters:
        if key not in accepted:
            raise InvalidParameter(f"Invalid filter '{key}'")


def flag(filters: dict[str, list[str]], key: str) -> bool | None:
    """A boolean filter's value (None when absent); moby's error for anything else."""
    values = filters.get(key)
    if not values:
        return None
    lowered = {v.lower() for v in values}
    if lowered <= {"true", "1"}:
        return True
    if lowered <= {"false", "0"}:
        return False
    raise InvalidParameter(f"Invalid filter '{key}=[{' '.join(values)}]'")


def _has_labels(record: VolumeRecord, wanted: list[str]) -> bool:
    """Every `key` or `key=value` of `wanted` is on the volume."""
    labels = record.labels or {}
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def _lacks_labels(record: VolumeRecord, unwanted: list[str]) -> bool:
    labels = record.labels or {}
    for item in unwanted:
        key, sep, value = item.partition("=")
        if key in labels and (not sep or labels[key] == value):
            return False
    return True


def list_selector(filters: dict[str, list[str]]) -> Selector:
    _validate(filters, LIST_FILTERS)
    dangling = flag(filters, "dangling")
    drivers, names = filters.get("driver") or [], filters.get("name") or []
    labels = filters.get("label") or []

    def keep(record: VolumeRecord, in_use: bool) -> bool:
        return ((dangling is None or dangling != in_use)
                and (not drivers or record.driver in drivers)
                and (not names or any(n in record.name for n in names))
                and _has_labels(record, labels))

    return keep


def prune_selector(filters: dict[str, list[str]], api_1_42: bool) -> Selector:
    """Unused local volumes without driver options, as dockerd prunes; from API 1.42
    only the anonymous ones unless `all` is true."""
    _validate(filters, PRUNE_FILTERS_1_42 if api_1_42 else PRUNE_FILTERS)
    every = not api_1_42 or bool(flag(filters, "all"))
    labels, unlabels = filters.get("label") or [], filters.get("label!") or []

    def keep(record: VolumeRecord, in_use: bool) -> bool:
        return (not in_use and record.driver == "local" and not record.options
                and (every or record.anonymous)
                and _has_labels(record, labels) and _lacks_labels(record, unlabels))

    return keep
