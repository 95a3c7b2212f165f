"""The ``filters`` of GET /volumes and POST /volumes/prune, as moby's volume service
validates and applies them (volume/service/convert.go filtersToBy)."""

from __future__ import annotations

from collections.abc import Callable

from moorage.daemon.filterargs import flag, has_labels, lacks_labels, validate
from moorage.model.volumes import VolumeRecord

Selector = Callable[[VolumeRecord, bool], bool]   # (volume, in use) -> kept

LIST_FILTERS = ("dangling", "driver", "label", "name")
PRUNE_FILTERS = ("label", "label!")
PRUNE_FILTERS_1_42 = ("label", "label!", "all")


def list_selector(filters: dict[str, list[str]]) -> Selector:
    validate(filters, LIST_FILTERS)
    dangling = flag(filters, "dangling")
    drivers, names = filters.get("driver") or [], filters.get("name") or []
    labels = filters.get("label") or []

    def keep(record: VolumeRecord, in_use: bool) -> bool:
        return ((dangling is None or dangling != in_use)
                and (not drivers or record.driver in drivers)
                and (not names or any(n in record.name for n in names))
                and has_labels(record.labels or {}, labels))

    return keep


def prune_selector(filters: dict[str, list[str]], api_1_42: bool) -> Selector:
    """Unused local volumes without driver options, as dockerd prunes; from API 1.42
    only the anonymous ones unless `all` is true."""
    validate(filters, PRUNE_FILTERS_1_42 if api_1_42 else PRUNE_FILTERS)
    every = not api_1_42 or bool(flag(filters, "all"))
    labels, unlabels = filters.get("label") or [], filters.get("label!") or []

    def keep(record: VolumeRecord, in_use: bool) -> bool:
        return (not in_use and record.driver == "local" and not record.options
                and (every or record.anonymous)
                and has_labels(record.labels or {}, labels)
                and lacks_labels(record.labels or {}, unlabels))

    return keep
