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
