"""Dockerfile instructions applied to a config by ``docker import --change``.

Engine API "ImageCreate" (``changes``) and moby's builder/dockerfile
``BuildFromConfig``: only the instructions that change the config are allowed,
with the Dockerfile's argument forms (JSON array or shell form, ``k=v`` pairs or
the legacy ``ENV key value``) and the same error messages.
"""

from __future__ import annotations

import json
import posixpath
import shlex
from collections.abc import Callable
from typing import Any

from moorage import environ
from moorage.errors import InvalidParameter

Settings = dict[str, Any]


def apply_changes(settings: Settings, changes: list[str]) -> Settings:
    """A copy of the container-config ``settings`` with every instruction applied."""
    result = dict(settings)
    for line in changes:
        line = line.strip()
        if not line:
            continue
        word, _, rest = line.partition(" ")
        handler = _HANDLERS.get(word.lower())
        if handler is None:
            raise InvalidParameter(f"{word.lower()} is not a valid change command")
        handler(result, rest.strip(), word.upper())
    return result


def _exec_form(rest: str) -> list[str] | None:
    """The JSON-array form, or None when ``rest`` is the shell form."""
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _command(rest: str) -> list[str]:
    exec_form = _exec_form(rest)
    return exec_form if exec_form is not None else ["/bin/sh", "-c", rest]


def _cmd(s: Settings, rest: str, _word: str) -> None:
    s["Cmd"] = _command(rest)


def _entrypoint(s: Settings, rest: str, _word: str) -> None:
    s["Entrypoint"] = _command(rest)


def _pairs(rest: str, word: str) -> list[tuple[str, str]]:
    """``k=v k2="v 2"`` pairs, or the legacy ``key value with spaces`` form."""
    if not rest:
        raise InvalidParameter(f"{word} requires at least one argument")
    try:
        words = shlex.split(rest)
    except ValueError as e:
        raise InvalidParameter(f"{word}: {e}") from None
    if "=" not in words[0]:
        key, _, value = rest.partition(" ")
        if not value.strip():
            raise InvalidParameter(f"{word} must have two arguments")
        return [(key, value.strip())]
    pairs = []
    for item in words:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidParameter(f"{word} names can not be blank" if not key
                                   else f"Syntax error - can't find = in {item!r}. "
                                        "Must be of the form: name=value")
        pairs.append((key, value))
    return pairs


def _env(s: Settings, rest: str, word: str) -> None:
    s["Env"] = environ.merge(s.get("Env") or (),
                             [f"{key}={value}" for key, value in _pairs(rest, word)])


def _label(s: Settings, rest: str, word: str) -> None:
    labels = dict(s.get("Labels") or {})
    for key, value in _pairs(rest, word):
        labels[key] = value
    s["Labels"] = labels


def _expose(s: Settings, rest: str, word: str) -> None:
    if not rest:
        raise InvalidParameter(f"{word} requires at least one argument")
    ports = dict(s.get("ExposedPorts") or {})
    for port in rest.split():
        number, _, proto = port.partition("/")
        proto = proto.lower() or "tcp"
        if not number.isdigit() or proto not in ("tcp", "udp", "sctp"):
            raise InvalidParameter(f"invalid containerPort: {port}")
        ports[f"{int(number)}/{proto}"] = {}
    s["ExposedPorts"] = ports


def _volume(s: Settings, rest: str, word: str) -> None:
    paths = _exec_form(rest)
    if paths is None:
        paths = rest.split()
    if not paths:
        raise InvalidParameter(f"{word} requires at least one argument")
    volumes = dict(s.get("Volumes") or {})
    for path in paths:
        if not path.strip():
            raise InvalidParameter("VOLUME specified can not be an empty string")
        volumes[path] = {}
    s["Volumes"] = volumes


def _single(key: str) -> Callable[[Settings, str, str], None]:
    def handler(s: Settings, rest: str, word: str) -> None:
        if not rest:
            raise InvalidParameter(f"{word} requires exactly one argument")
        s[key] = rest
    return handler


def _workdir(s: Settings, rest: str, word: str) -> None:
    if not rest:
        raise InvalidParameter(f"{word} requires exactly one argument")
    # A relative WORKDIR continues from the previous one (Dockerfile reference).
    s["WorkingDir"] = posixpath.join("/", s.get("WorkingDir") or "/", rest)


def _onbuild(s: Settings, rest: str, word: str) -> None:
    if not rest:
        raise InvalidParameter(f"{word} requires at least one argument")
    s["OnBuild"] = [*(s.get("OnBuild") or []), rest]


_HANDLERS: dict[str, Callable[[Settings, str, str], None]] = {
    "cmd": _cmd, "entrypoint": _entrypoint, "env": _env, "label": _label,
    "expose": _expose, "volume": _volume, "user": _single("User"), "workdir": _workdir,
    "stopsignal": _single("StopSignal"), "onbuild": _onbuild,
}
