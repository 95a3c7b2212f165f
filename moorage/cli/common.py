"""Pieces several commands share: --format templates, --filter values, name lists."""

from __future__ import annotations

from moorage.cli.flags import LIST, STR, flag
from moorage.cli.session import CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

FORMAT = flag("f|format", STR, "Format output using a custom template")
FILTER = flag("f|filter", LIST, "Filter output based on conditions provided")


def template(fmt: str, data: Any) -> str:
    from moorage.cli.template import Template, TemplateError

    try:
        return Template(fmt.replace("\\n", "\n").replace("\\t", "\t")).execute(data)
    except TemplateError as err:
        raise CommandError(f"template: {err}") from None


def filters(values: list[str]) -> dict[str, list[str]] | None:
    """`--filter key=value`, repeatable, as the API's {"key": ["value", …]}."""
    out: dict[str, list[str]] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise CommandError("bad format of filter (expected name=value)", 125)
        out.setdefault(key.strip().lower(), []).append(value)
    return out or None


def confirmed(warning: str) -> bool:
    """docker's prune prompt: the warning, then a yes or no read from stdin."""
    import sys

    sys.stdout.write(f"WARNING! {warning}\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def for_each(names: list[str], action: Callable[[str], str | None]) -> int:
    """docker's loop over several objects: print each success, report each failure,
    exit 1 if any failed."""
    import sys

    from moorage.client.errors import APIError

    failed = False
    for name in names:
        try:
            shown = action(name)
        except APIError as err:
            sys.stdout.flush()
            sys.stderr.write(f"Error response from daemon: {err.message}\n")
            failed = True
            continue
        if shown is not None:
            sys.stdout.write(shown + "\n")
    return 1 if failed else 0


def inspect_each(get: Callable[[str], Any], names: list[str], fmt: str | None) -> int:
    """docker's `inspect` of several objects: the found ones as one JSON list (or `fmt`
    each), then the daemon's message for each missing one; exit 1 if any was missing."""
    import sys

    from moorage.cli.output import indented_json, write
    from moorage.client.errors import APIError

    found, missing = [], []
    for name in names:
        try:
            found.append(get(name))
        except APIError as err:
            if err.status != 404:
                raise
            missing.append(err.message)
    write("".join(template(fmt, i) + "\n" for i in found) if fmt
          else indented_json(found) + "\n")
    for message in missing:
        sys.stderr.write(f"Error response from daemon: {message}\n")
    return 1 if missing else 0
