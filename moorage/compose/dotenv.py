"""`.env` and `env_file` files as compose-go's dotenv reads them."""

from __future__ import annotations

from collections.abc import Mapping

from moorage.compose.errors import ComposeError
from moorage.compose.interpolate import substitute

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "$": "$"}


def _unquote(raw: str, lookup: Mapping[str, str]) -> str:
    raw = raw.strip()
    if raw[:1] == "'" and raw.rstrip()[-1:] == "'" and len(raw) > 1:
        return raw[1:-1]
    if raw[:1] == '"':
        end = raw.rfind('"')
        body = raw[1:end] if end > 0 else raw[1:]
        out, i = [], 0
        while i < len(body):
            if body[i] == "\\" and i + 1 < len(body) and body[i + 1] in _ESCAPES:
                out.append(_ESCAPES[body[i + 1]])
                i += 2
            else:
                out.append(body[i])
                i += 1
        return _expand("".join(out), lookup)
    cut = raw.find(" #")
    return _expand((raw[:cut] if cut >= 0 else raw).strip(), lookup)


def _expand(value: str, lookup: Mapping[str, str]) -> str:
    if "$" not in value:
        return value
    try:
        return substitute(value, lookup, lambda _message: None)
    except Exception:
        return value


def parse(text: str, path: str, base: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """KEY=VALUE lines (`export`, comments, quotes); a bare KEY takes its value from `base`
    (None when it has none); values may use the variables defined above them."""
    found: dict[str, str | None] = {}
    outer = dict(base or {})
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not name or any(c.isspace() for c in name):
            raise ComposeError(f"failed to read {path}: line {number}: unexpected character "
                               f"{line[len(name):][:1]!r} in variable name {line!r}")
        if not sep:
            found[name] = outer.get(name)
            continue
        lookup = {**outer, **{k: v for k, v in found.items() if v is not None}}
        found[name] = _unquote(value, lookup)
    return found


def read(path: str, base: Mapping[str, str] | None = None) -> dict[str, str | None]:
    try:
        with open(path, encoding="utf-8") as f:
            return parse(f.read(), path, base)
    except FileNotFoundError:
        raise ComposeError(f"env file {path} not found: stat {path}: no such file or "
                           "directory") from None
