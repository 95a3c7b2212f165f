"""Compose's variable substitution: ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e}, ${VAR?e},
${VAR:+a}, ${VAR+a}, $VAR and $$, with compose-go's error messages."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

from moorage.compose.errors import ComposeError

_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME = _NAME_START | frozenset("0123456789")


class _Invalid(Exception):
    pass


class _Required(Exception):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"required variable {name} is missing a value"
                         + (f": {reason}" if reason else ""))


def _braced(body: str, env: Mapping[str, str], warn: Callable[[str], None]) -> str:
    i = 0
    while i < len(body) and body[i] in _NAME:
        i += 1
    name, rest = body[:i], body[i:]
    if not name or name[0] not in _NAME_START:
        raise _Invalid
    if not rest:
        return _lookup(name, env, warn)
    for op in (":-", ":?", ":+", "-", "?", "+"):
        if rest.startswith(op):
            arg = rest[len(op):]
            break
    else:
        raise _Invalid
    value = env.get(name)
    present = value is not None and (value != "" or not op.startswith(":"))
    if op[-1] == "-":
        return value if present and value is not None else substitute(arg, env, warn)
    if op[-1] == "?":
        if not present or value is None:
            raise _Required(name, substitute(arg, env, warn))
        return value
    return substitute(arg, env, warn) if present else ""


def _lookup(name: str, env: Mapping[str, str], warn: Callable[[str], None]) -> str:
    value = env.get(name)
    if value is None:
        warn(f'The "{name}" variable is not set. Defaulting to a blank string.')
        return ""
    return value


def substitute(template: str, env: Mapping[str, str], warn: Callable[[str], None]) -> str:
    out: list[str] = []
    i, n = 0, len(template)
    while i < n:
        c = template[i]
        if c != "$":
            out.append(c)
            i += 1
            continue
        nxt = template[i + 1] if i + 1 < n else ""
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            depth, j = 1, i + 2
            while j < n and depth:
                depth += {"{": 1, "}": -1}.get(template[j], 0)
                j += 1
            if depth:
                raise _Invalid
            out.append(_braced(template[i + 2:j - 1], env, warn))
            i = j
        elif nxt and nxt in _NAME_START:
            j = i + 1
            while j < n and template[j] in _NAME:
                j += 1
            out.append(_lookup(template[i + 1:j], env, warn))
            i = j
        else:
            raise _Invalid
    return "".join(out)


def _warn_once() -> Callable[[str], None]:
    seen: set[str] = set()

    def warn(message: str) -> None:
        if message not in seen:
            seen.add(message)
            sys.stderr.write(f"WARN[0000] {message}\n")
    return warn


def interpolate(tree: Any, env: Mapping[str, str],
                warn: Callable[[str], None] | None = None,
                where: Callable[[tuple[str, ...]], str] | None = None) -> Any:
    """Every string value of a loaded file, substituted; errors name the dotted path and,
    with `where` (a key path's `file:line`), the place."""
    report = warn or _warn_once()

    def walk(node: Any, path: str, keys: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, f"{path}.{k}" if path else str(k), (*keys, str(k)))
                    for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, f"{path}[{i}]", (*keys, str(i))) for i, v in enumerate(node)]
        if isinstance(node, str) and "$" in node:
            at = f" at {where(keys)}" if where else ""
            try:
                return substitute(node, env, report)
            except _Invalid:
                raise ComposeError(f"invalid interpolation format for {path}{at}.\nYou may "
                                   f"need to escape any $ with another $.\n{node}") from None
            except _Required as err:
                raise ComposeError(f"error while interpolating {path}{at}: {err}") from None
        return node
    return walk(tree, "", ())
