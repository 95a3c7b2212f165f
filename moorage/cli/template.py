"""The subset of Go's text/template that `--format` uses in practice.

Fields and nested fields (`{{.State.Status}}`), pipelines (`{{.Names | upper}}`),
the docker CLI's functions (json, join, split, upper, lower, title, len, index,
println, pad, truncate), string and number literals, `range`/`if`/`else`/`with`
blocks closed by `end`, and the `{{- ` / ` -}}` whitespace trimming.
"""

from __future__ import annotations

import json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class TemplateError(Exception):
    pass


def to_json(value: Any) -> str:
    """Go's encoding/json: compact, HTML characters escaped, no trailing newline."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        value = value[key] if not isinstance(value, dict) else value.get(key)
    return value


FUNCS: dict[str, Callable[..., Any]] = {
    "json": to_json,
    "join": lambda items, sep: sep.join(str(i) for i in items or []),
    "split": lambda text, sep: text.split(sep),
    "upper": lambda text: str(text).upper(),
    "lower": lambda text: str(text).lower(),
    "title": lambda text: str(text).title(),
    "len": lambda value: len(value or ()),
    "index": _index,
    "println": lambda *values: " ".join(render_value(v) for v in values) + "\n",
    "print": lambda *values: "".join(render_value(v) for v in values),
    "pad": lambda text, left, right: " " * left + str(text) + " " * right,
    "truncate": lambda text, n: str(text)[:n],
}


def render_value(value: Any) -> str:
    """How Go prints a value with {{.}}: maps and slices in Go syntax, nil as <no value>."""
    if value is None:
        return "<no value>"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, dict):
        inner = " ".join(f"{k}:{render_value(v)}" for k, v in sorted(value.items()))
        return f"map[{inner}]"
    if isinstance(value, list):
        return "[" + " ".join(render_value(v) for v in value) + "]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _tokens(action: str) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(action):
        c = action[i]
        if c.isspace():
            i += 1
        elif c in "\"`":
            end = action.index(c, i + 1)
            while c == '"' and action[end - 1] == "\\":
                end = action.index(c, end + 1)
            out.append(action[i:end + 1])
            i = end + 1
        elif c in "|()":
            out.append(c)
            i += 1
        else:
            j = i
            while j < len(action) and not action[j].isspace() and action[j] not in "|()":
                j += 1
            out.append(action[i:j])
            i = j
    return out


def _field(value: Any, path: str) -> Any:
    for name in path.split(".")[1:]:
        if not name:
            continue
        if isinstance(value, dict):
            method = getattr(type(value), name, None) if name[:1].isupper() else None
            if method is not None and name not in value:
                # a row's method, as docker's contexts have (`{{.Label "tier"}}`)
                value = method.__get__(value)
                continue
            if name not in value:
                # Go templates see struct field names (APIVersion) where the JSON says
                # ApiVersion: match those case-insensitively.
                folded = {key.lower(): key for key in value if isinstance(key, str)}
                if name.lower() not in folded:
                    raise TemplateError(f"can't evaluate field {name}")
                name = folded[name.lower()]
            value = value[name]
        elif value is None:
            return None
        else:
            raise TemplateError(f"can't evaluate field {name} in type {type(value).__name__}")
    return value


def _operand(token: str, dot: Any, groups: dict[str, Any]) -> Any:
    if token in groups:
        return groups[token]
    if token.startswith("."):
        return _field(dot, token)
    if token[0] == '"':
        return json.loads(token)
    if token[0] == "`":
        return token[1:-1]
    if token.lstrip("-").isdigit():
        return int(token)
    if token in ("true", "false"):
        return token == "true"
    if token in FUNCS:
        return FUNCS[token]()
    raise TemplateError(f'function "{token}" not defined')


def _command(tokens: list[str], dot: Any, piped: tuple[Any, ...],
             groups: dict[str, Any]) -> Any:
    head = tokens[0]
    if head in FUNCS:
        args = [_operand(t, dot, groups) for t in tokens[1:]] + list(piped)
        try:
            return FUNCS[head](*args)
        except (TypeError, KeyError, IndexError, AttributeError) as err:
            raise TemplateError(f"error calling {head}: {err}") from None
    value = _operand(head, dot, groups)
    if callable(value) and head.startswith("."):
        args = [_operand(t, dot, groups) for t in tokens[1:]] + list(piped)
        try:
            return value(*args)
        except TypeError as err:
            raise TemplateError(f"error calling {head}: {err}") from None
    if len(tokens) > 1 or piped:
        raise TemplateError(f"can't give argument to non-function {head}")
    return value


def _pipeline(tokens: list[str], dot: Any, groups: dict[str, Any]) -> Any:
    """`a | b x` calls b with x and then a's value, as Go passes the pipe last."""
    piped: tuple[Any, ...] = ()
    stage: list[str] = []
    for token in [*tokens, "|"]:
        if token != "|":
            stage.append(token)
            continue
        if not stage:
            raise TemplateError("missing command in pipeline")
        piped = (_command(stage, dot, piped, groups),)
        stage = []
    return piped[0]


def evaluate(action: str, dot: Any) -> Any:
    tokens = _tokens(action)
    # Parenthesised groups, innermost first, become placeholders holding their value.
    groups: dict[str, Any] = {}
    while "(" in tokens:
        close = tokens.index(")")
        start = max(i for i in range(close) if tokens[i] == "(")
        key = f"\x00{len(groups)}"
        groups[key] = _pipeline(tokens[start + 1:close], dot, groups)
        tokens[start:close + 1] = [key]
    return _pipeline(tokens, dot, groups)


class Template:
    """A parsed template: a tree of text, actions and blocks."""

    def __init__(self, source: str) -> None:
        self.nodes, rest = self._parse(self._lex(source), 0)
        if rest is not None:
            raise TemplateError(f"unexpected {{{{{rest}}}}}")

    @staticmethod
    def _lex(source: str) -> list[tuple[str, str]]:
        items: list[tuple[str, str]] = []
        pos = 0
        while (start := source.find("{{", pos)) >= 0:
            end = source.find("}}", start)
            if end < 0:
                raise TemplateError("unclosed action")
            text = source[pos:start]
            action = source[start + 2:end]
            if action.startswith("- "):
                text = text.rstrip()
                action = action[2:]
            trim_after = action.endswith(" -")
            if trim_after:
                action = action[:-2]
            items.append(("text", text))
            items.append(("action", action.strip()))
            pos = end + 2
            if trim_after:
                while pos < len(source) and source[pos].isspace():
                    pos += 1
        items.append(("text", source[pos:]))
        return items

    def _parse(self, items: list[tuple[str, str]], i: int) -> tuple[list[Any], Any]:
        nodes: list[Any] = []
        self._pos = i
        while self._pos < len(items):
            kind, value = items[self._pos]
            self._pos += 1
            if kind == "text":
                if value:
                    nodes.append(value)
                continue
            word = value.split(None, 1)[0] if value else ""
            if word in ("end", "else"):
                return nodes, value
            if word in ("range", "if", "with"):
                expr = value[len(word):].strip()
                body, stop = self._parse(items, self._pos)
                other: list[Any] = []
                if stop == "else":
                    other, stop = self._parse(items, self._pos)
                if stop != "end":
                    raise TemplateError(f"unexpected EOF in {word}")
                nodes.append((word, expr, body, other))
            else:
                nodes.append(("expr", value))
        return nodes, None

    def execute(self, dot: Any) -> str:
        out: list[str] = []
        self._run(self.nodes, dot, out)
        return "".join(out)

    def _run(self, nodes: list[Any], dot: Any, out: list[str]) -> None:
        for node in nodes:
            if isinstance(node, str):
                out.append(node)
            elif node[0] == "expr":
                out.append(render_value(evaluate(node[1], dot)))
            else:
                word, expr, body, other = node
                value = evaluate(expr, dot)
                if word == "range":
                    items = sorted(value.values()) if isinstance(value, dict) else value or []
                    for item in items:
                        self._run(body, item, out)
                    if not items:
                        self._run(other, dot, out)
                elif value:
                    self._run(body, value if word == "with" else dot, out)
                else:
                    self._run(other, dot, out)
