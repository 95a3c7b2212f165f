"""The ``filters`` of GET /images/json and POST /images/prune, as moby validates them."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from moorage.daemon.filterargs import flag, has_labels, lacks_labels, validate
from moorage.errors import InvalidParameter
from moorage.image.config import parse_time
from moorage.image.reference import parse_normalized
from moorage.store.metadata import ImageRecord, RefRecord

Selector = Callable[[ImageRecord, list[RefRecord], dict[str, Any]], bool]

_LIST_FILTERS = ("dangling", "label", "before", "since", "reference", "until")
_PRUNE_FILTERS = ("dangling", "label", "label!", "until")
_DURATION = re.compile(r"(?:(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def _labels(config: dict[str, Any]) -> dict[str, str]:
    return (config.get("config") or {}).get("Labels") or {}


def _pattern(pattern: str) -> re.Pattern[str]:
    """Go's path.Match syntax: ``*`` and ``?`` stop at "/", ``[…]`` classes, ``\\`` escapes."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                raise InvalidParameter("syntax error in pattern")
            body = pattern[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("^") else body) + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    try:
        return re.compile("".join(out))
    except re.error:
        raise InvalidParameter("syntax error in pattern") from None


def reference_matches(patterns: list[str], familiar_ref: str) -> bool:
    """distribution/reference FamiliarMatch: the whole familiar string or its name."""
    ref = parse_normalized(familiar_ref)
    candidates = (ref.familiar_string(), ref.familiar_name)
    return any(_pattern(p).fullmatch(c) for p in patterns for c in candidates)


def timestamp(value: str, now: float | None = None) -> float:
    """moby's timetypes.GetTimestamp: a Go duration before now, a UNIX time or RFC 3339."""
    now = time.time() if now is None else now
    if _DURATION.fullmatch(value):
        return now - sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(value))
    try:
        return float(value)
    except ValueError:
        pass
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:\d{2})?)?", value):
        if "T" in value and value[-1] != "Z" and not re.search(r"[+-]\d{2}:\d{2}$", value):
            return datetime.fromisoformat(value).timestamp()  # local time, as Go's
        stamp = parse_time(value if "T" in value else value + "T00:00:00Z")
        if stamp:
            return stamp
    raise InvalidParameter(f'failed to parse value as time or duration: "{value}"')


def list_selector(filters: dict[str, list[str]],
                  lookup: Callable[[str], ImageRecord]) -> Selector:
    validate(filters, _LIST_FILTERS)
    dangling = bool(flag(filters, "dangling")) if "dangling" in filters else None
    before = min((lookup(n).created for n in filters.get("before", [])), default=None)
    since = max((lookup(n).created for n in filters.get("since", [])), default=None)
    until = min((timestamp(v) for v in filters.get("until", [])), default=None)
    patterns = filters.get("reference", [])
    for p in patterns:
        _pattern(p)

    def select(record: ImageRecord, refs: list[RefRecord], config: dict[str, Any]) -> bool:
        if dangling is not None and dangling != (not refs):
            return False
        if before is not None and record.created >= before:
            return False
        if since is not None and record.created <= since:
            return False
        if until is not None and record.created >= until:
            return False
        if patterns and not any(reference_matches(patterns, r.ref)
                                for r in refs if not r.is_digest):
            return False
        return has_labels(_labels(config), filters.get("label", []))

    return select


def prune_selector(filters: dict[str, list[str]]) -> Selector:
    validate(filters, _PRUNE_FILTERS)
    dangling_only = flag(filters, "dangling") is not False
    until = min((timestamp(v) for v in filters.get("until", [])), default=None)

    def select(record: ImageRecord, refs: list[RefRecord], config: dict[str, Any]) -> bool:
        if dangling_only and refs:
            return False
        if until is not None and record.created >= until:
            return False
        labels = _labels(config)
        return has_labels(labels, filters.get("label", [])) and \
            lacks_labels(labels, filters.get("label!", []))

    return select
