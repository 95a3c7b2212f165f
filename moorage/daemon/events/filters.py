"""`/events` filters, matched as dockerd's daemon/events/filter.go does."""

from __future__ import annotations

from collections.abc import Mapping

from moorage.daemon.events.bus import Event
from moorage.errors import InvalidParameter

_ACCEPTED = ("config", "container", "daemon", "event", "image", "label", "network", "node",
             "plugin", "scope", "secret", "service", "type", "volume")


def validate(filters: Mapping[str, list[str]]) -> None:
    for key in filters:
        if key not in _ACCEPTED:
            raise InvalidParameter(f"invalid filter '{key}'")


def _exact(filters: Mapping[str, list[str]], key: str, *sources: str) -> bool:
    values = filters.get(key)
    return not values or any(source in values for source in sources)


def _fuzzy(filters: Mapping[str, list[str]], key: str, *sources: str) -> bool:
    """A value matches a source it equals or begins (an ID prefix, a name's start)."""
    values = filters.get(key)
    return not values or any(source.startswith(v) for v in values for source in sources if source)


def _labels(filters: Mapping[str, list[str]], attributes: Mapping[str, str]) -> bool:
    for wanted in filters.get("label", ()):
        key, sep, value = wanted.partition("=")
        if key not in attributes or (sep and attributes[key] != value):
            return False
    return True


def _strip_tag(name: str) -> str:
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def matches(filters: Mapping[str, list[str]], event: Event) -> bool:
    attrs = event.attributes
    action = event.action.split(":", 1)[0]
    name = attrs.get("name", "")
    image = attrs.get("name" if event.type == "image" else "image", "")
    by_type = {kind: _fuzzy(filters, kind, event.actor_id, name)
               for kind in ("container", "volume", "network", "plugin", "node", "service",
                            "secret", "config")}
    daemon_ok = _fuzzy(filters, "daemon", event.actor_id, name) if event.type == "daemon" \
        else not filters.get("daemon")
    return (_exact(filters, "event", event.action, action)
            and _exact(filters, "type", event.type)
            and _exact(filters, "scope", event.scope)
            and daemon_ok
            and all(by_type[kind] if event.type == kind or not filters.get(kind) else False
                    for kind in by_type)
            and _exact(filters, "image", event.actor_id, image, _strip_tag(event.actor_id),
                       _strip_tag(image))
            and _labels(filters, attrs))
