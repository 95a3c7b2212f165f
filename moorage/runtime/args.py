"""A small command-line parser for runc's flag syntax.

argparse costs ~10 ms to import and build for this CLI, a third of a whole
`runc run`; this table-driven parser costs well under one. It accepts what
runc's (urfave/cli) parser accepts from callers such as containerd:
`--flag value`, `--flag=value`, `-f value`, single-dash long flags, and
global flags before the command.
"""

from __future__ import annotations

from moorage.errors import InvalidParameter

# A flag's kind: "bool", "str", "int", "list" (repeatable str) or "ints".
Flags = dict[str, str]


class Command:
    __slots__ = ("aliases", "flags", "help", "name", "positionals", "rest")

    def __init__(self, name: str, help_text: str, flags: Flags, positionals: tuple[str, ...],
                 *, rest: str | None = None, aliases: dict[str, str] | None = None) -> None:
        self.name = name
        self.help = help_text
        self.flags = flags
        self.positionals = positionals
        self.rest = rest
        self.aliases = aliases or {}

    def usage(self) -> str:
        flags = " ".join(f"[--{name}{'' if kind == 'bool' else ' VALUE'}]"
                         for name, kind in self.flags.items())
        tail = f" [{self.rest.upper()}...]" if self.rest else ""
        positionals = " ".join(f"<{p.replace('_', '-')}>" for p in self.positionals)
        return f"{self.name} {flags} {positionals}{tail}".replace("  ", " ")


def _default(kind: str) -> object:
    return {"bool": False, "int": 0, "list": [], "ints": []}.get(kind)


def parse(argv: list[str], flags: Flags, aliases: dict[str, str], positionals: tuple[str, ...],
          rest: str | None, *, stop_at_positional: bool) -> tuple[dict[str, object], list[str]]:
    """Parse `argv`; return the values and, if `stop_at_positional`, the unparsed tail."""
    values: dict[str, object] = {name.replace("-", "_"): _default(kind)
                                 for name, kind in flags.items()}
    # Each invocation gets its own lists, not the shared defaults.
    for name, kind in flags.items():
        if kind in ("list", "ints"):
            values[name.replace("-", "_")] = []
    found: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--" and not stop_at_positional:
            found.extend(argv[i:])
            break
        if arg.startswith("-") and arg != "-" and not (rest and len(found) >= len(positionals)):
            name, has_value, value = arg.lstrip("-").partition("=")
            name = aliases.get(name, name)
            kind = flags.get(name)
            if kind is None:
                raise InvalidParameter(f"flag provided but not defined: {arg.partition('=')[0]}")
            key = name.replace("-", "_")
            if kind == "bool":
                values[key] = value.lower() not in ("false", "0") if has_value else True
                continue
            if not has_value:
                if i >= len(argv):
                    raise InvalidParameter(f"flag needs an argument: {arg}")
                value = argv[i]
                i += 1
            if kind in ("int", "ints"):
                try:
                    number = int(value)
                except ValueError:
                    raise InvalidParameter(f"invalid value {value!r} for flag {arg}") from None
                if kind == "int":
                    values[key] = number
                else:
                    values[key].append(number)  # type: ignore[attr-defined]
            elif kind == "list":
                values[key].append(value)  # type: ignore[attr-defined]
            else:
                values[key] = value
            continue
        if stop_at_positional:
            return values, argv[i - 1:]
        found.append(arg)
    if stop_at_positional:
        return values, []
    if len(found) < len(positionals):
        missing = positionals[len(found)].replace("_", "-")
        raise InvalidParameter(f"{missing} cannot be empty")
    for name, value in zip(positionals, found, strict=False):
        values[name] = value
    extra = found[len(positionals):]
    if rest is not None:
        values[rest] = extra
    elif extra:
        raise InvalidParameter(f"unexpected arguments: {' '.join(extra)}")
    return values, []
