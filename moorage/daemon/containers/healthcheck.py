"""A container's healthcheck settings: dockerd's checks, the merge with the image's
HEALTHCHECK, the probe's command and defaults, and State.Health at a start."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from moorage.errors import InvalidParameter
from moorage.model.records import STARTING, ContainerRecord, Health

log = logging.getLogger("moord.containers")

SECOND = 1_000_000_000
_DEFAULTS = {"Interval": 30 * SECOND, "Timeout": 30 * SECOND, "StartPeriod": 0,
             "StartInterval": 5 * SECOND}
DEFAULT_RETRIES = 3
_MINIMUM = 1_000_000  # 1 ms, moby's MinimumDuration
LOG_ENTRIES = 5
OUTPUT_LIMIT = 4096
_FIELDS = ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries")


def validate(healthcheck: Mapping[str, Any] | None) -> None:
    """dockerd's checks at create (daemon/container.go), in its words."""
    if not healthcheck:
        return
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval"):
        value = healthcheck.get(key) or 0
        if not isinstance(value, int) or value < 0 or 0 < value < _MINIMUM:
            raise InvalidParameter(f"{key} in Healthcheck cannot be less than 1ms")
    retries = healthcheck.get("Retries") or 0
    if not isinstance(retries, int) or retries < 0:
        raise InvalidParameter("Retries in Healthcheck cannot be negative")
    test = healthcheck.get("Test") or []
    if not isinstance(test, list) or not all(isinstance(t, str) for t in test):
        raise InvalidParameter("Healthcheck Test must be a list of strings")


def merge(user: Mapping[str, Any] | None,
          image: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """moby's merge(): what the container leaves unset comes from the image."""
    if user is None:
        return dict(image) if image else None
    merged = dict(user)
    if image:
        if not merged.get("Test"):
            merged["Test"] = image.get("Test")
        for key in _FIELDS:
            if not merged.get(key) and image.get(key):
                merged[key] = image[key]
    return merged


def command(record: ContainerRecord) -> list[str] | None:
    """The probe's command; None for no healthcheck, NONE or an unknown type (dockerd
    logs the last and runs nothing)."""
    test = list((record.config.healthcheck or {}).get("Test") or ())
    if not test:
        return None
    if test[0] == "CMD":
        return test[1:] or None
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])]
    if test[0] != "NONE":
        log.warning("Unknown healthcheck type '%s' (expected 'CMD') in container %s",
                    test[0], record.id)
    return None


def initial(record: ContainerRecord) -> Health | None:
    """State.Health as a start leaves it: starting, its log kept (moby initHealthMonitor)."""
    if command(record) is None:
        return record.state.health
    previous = record.state.health or Health()
    return replace(previous, status=STARTING, failing_streak=0)


def setting(record: ContainerRecord, key: str) -> int:
    return int((record.config.healthcheck or {}).get(key) or _DEFAULTS[key])
