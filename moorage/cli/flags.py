"""Flag parsing with the docker CLI's syntax (spf13/pflag) and its error messages.

Combined short flags (`-dit`, `-p8080:80`), `--flag=value`, repeatable list flags,
`--` and, for commands such as `run`, no flags after the first argument (the
image): everything from there on belongs to the container's command.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing and dataclasses cost ~15 ms of start-up; annotations only
    from collections.abc import Callable
    from typing import Any

BOOL, STR, LIST, INT = "bool", "string", "list", "int"


class UsageError(Exception):
    """A command line that cannot be parsed: docker prints it with the usage, exit 125."""


class ArgsError(Exception):
    """Wrong number of arguments: docker prints it with "See '… --help'", exit 1."""


class Flag:
    __slots__ = ("default", "help", "hidden", "kind", "long", "short")

    def __init__(self, long: str, short: str | None, kind: str, help: str,
                 default: Any = None, hidden: bool = False) -> None:
        self.long, self.short, self.kind, self.help = long, short, kind, help
        self.default, self.hidden = default, hidden

    @property
    def attr(self) -> str:
        return self.long.replace("-", "_")


def flag(names: str, kind: str, help: str, default: Any = None, hidden: bool = False) -> Flag:
    """`flag("d|detach", BOOL, "…")`: the short name, if any, comes first."""
    short, _, long = names.rpartition("|")
    return Flag(long, short or None, kind, help, default, hidden)


class Spec:
    """One command: its usage line, flags and the function that runs it."""

    __slots__ = ("aliases", "flags", "interspersed", "max_args", "min_args", "run", "usage")

    def __init__(self, usage: str, run: Callable[..., int | None], flags: tuple[Flag, ...] = (),
                 min_args: int = 0, max_args: int | None = None, interspersed: bool = True,
                 aliases: tuple[str, ...] = ()) -> None:
        self.usage, self.run, self.flags = usage, run, flags
        self.min_args, self.max_args = min_args, max_args
        self.interspersed, self.aliases = interspersed, aliases


class Options:
    """Parsed flag values as attributes (`opts.detach`, `opts.env`)."""

    def __init__(self, flags: tuple[Flag, ...]) -> None:
        self._set: set[str] = set()
        for f in flags:
            default = f.default
            if default is None:
                default = [] if f.kind == LIST else (False if f.kind == BOOL else None)
            setattr(self, f.attr, default)

    def changed(self, name: str) -> bool:
        """Whether the flag was given (pflag's Changed), e.g. `--sig-proxy` explicitly."""
        return name in self._set

    def __getattr__(self, name: str) -> Any:  # only reached for names no flag defines
        raise AttributeError(name)


def _parse_bool(text: str, f: Flag) -> bool:
    lowered = text.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise UsageError(f'invalid argument "{text}" for "{_display(f)}" flag: '
                     f'strconv.ParseBool: parsing "{text}": invalid syntax')


def _display(f: Flag) -> str:
    return f"-{f.short}, --{f.long}" if f.short else f"--{f.long}"


def _store(opts: Options, f: Flag, value: str) -> None:
    opts._set.add(f.long)
    if f.kind == LIST:
        getattr(opts, f.attr).append(value)
    elif f.kind == INT:
        try:
            setattr(opts, f.attr, int(value))
        except ValueError:
            raise UsageError(f'invalid argument "{value}" for "{_display(f)}" flag: '
                             f'strconv.ParseInt: parsing "{value}": invalid syntax') from None
    else:
        setattr(opts, f.attr, value)


def parse(flags: tuple[Flag, ...], args: list[str], interspersed: bool = True,
          with_help: bool = True) -> tuple[Options, list[str]]:
    longs = {f.long: f for f in flags}
    shorts = {f.short: f for f in flags if f.short}
    if with_help:
        longs.setdefault("help", Flag("help", None, BOOL, "Print usage"))
    opts = Options(tuple(longs.values()))
    positionals: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            positionals += args[i:]
            break
        if arg.startswith("--"):
            name, has_value, value = arg[2:].partition("=")
            f = longs.get(name)
            if f is None:
                raise UsageError(f"unknown flag: --{name}")
            if f.kind == BOOL:
                opts._set.add(f.long)
                setattr(opts, f.attr, _parse_bool(value, f) if has_value else True)
                continue
            if not has_value:
                if i >= len(args):
                    raise UsageError(f"flag needs an argument: --{name}")
                value = args[i]
                i += 1
            _store(opts, f, value)
        elif arg.startswith("-") and arg != "-":
            letters = arg[1:]
            for j, letter in enumerate(letters):
                f = shorts.get(letter)
                if f is None:
                    if letter == "h" and with_help:
                        opts.help = True
                        continue
                    raise UsageError(f"unknown shorthand flag: '{letter}' in -{letters}")
                if f.kind == BOOL:
                    opts._set.add(f.long)
                    rest = letters[j + 1:]
                    if rest.startswith("="):
                        setattr(opts, f.attr, _parse_bool(rest[1:], f))
                        break
                    setattr(opts, f.attr, True)
                    continue
                value = letters[j + 1:]
                if value.startswith("="):
                    value = value[1:]
                elif not value:
                    if i >= len(args):
                        raise UsageError(f"flag needs an argument: '{letter}' in -{letter}")
                    value = args[i]
                    i += 1
                _store(opts, f, value)
                break
        else:
            positionals.append(arg)
            if not interspersed:
                positionals += args[i:]
                break
    return opts, positionals


def help_text(prog: str, spec: Spec, summary: str) -> str:
    lines = [f"Usage:  {prog} {spec.usage}".rstrip(), "", summary, ""]
    if spec.aliases:
        lines += ["Aliases:", "  " + ", ".join(spec.aliases), ""]
    shown = [f for f in spec.flags if not f.hidden]
    if shown:
        lines.append("Options:")
        cells = []
        for f in shown:
            name = f"  -{f.short}, --{f.long}" if f.short else f"      --{f.long}"
            if f.kind != BOOL:
                name += f" {f.kind}"
            cells.append((name, f.help + (f' (default "{f.default}")'
                                          if f.kind == STR and f.default else "")))
        width = max(len(name) for name, _ in cells) + 3
        lines += [name.ljust(width) + text for name, text in cells]
        lines.append("")
    return "\n".join(lines)
