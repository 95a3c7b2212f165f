"""What every list and prune endpoint's ``filters`` share, as moby's filters.Args checks
them: the keys an endpoint accepts, boolean filters and label filters, in dockerd's words."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from moorage.errors import InvalidParameter


def validate(filters: Mapping[str, list[str]], accepted: Collection[str]) -> None:
    for key in filters:
        if key not in accepted:
            raise InvalidParameter(f"Invalid filter '{key}'")


def flag(filters: Mapping[str, list[str]], key: str) -> bool | None:
    """A boolean filter's value (None when absent), as filters.GetBoolOrDefault reads it."""
    values = filters.get(key)
    if not values:
        return None
    lowered = {v.lower() for v in values}
    if lowered <= {"true", "1"}:
        return True
    if lowered <= {"false", "0"}:
        return False
    raise InvalidParameter(f"Invalid filter '{key}=[{' '.join(values)}]'")


def labelled(labels: Mapping[str, str], wanted: str) -> bool:
    """`wanted` (``key`` or ``key=value``) is among `labels`."""
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)


def has_labels(labels: Mapping[str, str], wanted: Iterable[str]) -> bool:
    """Every one of `wanted` is among `labels` (the ``label`` filter)."""
    return all(labelled(labels, item) for item in wanted)


def lacks_labels(labels: Mapping[str, str], unwanted: Iterable[str]) -> bool:
    """None of `unwanted` is among `labels` (the ``label!`` filter)."""
    return not any(labelled(labels, item) for item in unwanted)
